"""Read-your-writes: a query carrying a command's consistency token sees that write."""

from __future__ import annotations

import grpc
import pytest

from learnflow.server import Backend
from learnflow.v1 import learning_pb2
from tests.commands_support import enroll, learning, published_course
from tests.read_support import progress, projector_stopped
from tests.support import Caller, rich_status

REPETITIONS = 200


async def test_enroll_then_dashboard_with_the_token_shows_the_course_every_time(
    channel: grpc.aio.Channel, instructor: Caller, caller: Caller
) -> None:
    courses = [(await published_course(instructor))[0].id for _ in range(10)]
    stub = progress(channel)
    enrolled: set[str] = set()
    for i in range(REPETITIONS):
        course_id = courses[i % len(courses)]
        if course_id in enrolled:  # withdraw first, so "active" below is the new write
            await learning(channel).WithdrawEnrollment(
                learning_pb2.WithdrawEnrollmentRequest(course_id=course_id),
                metadata=caller.metadata(),
            )
        token = (await enroll(caller, course_id)).consistency_token
        enrolled.add(course_id)
        reply = await stub.ListMyEnrollments(
            learning_pb2.ListMyEnrollmentsRequest(page_size=100),
            metadata=caller.metadata(token),
        )
        states = {p.course_id: p.state for p in reply.enrollments}
        assert states.get(course_id) == learning_pb2.ENROLLMENT_STATE_ACTIVE, i


async def test_a_token_the_read_model_cannot_reach_is_unavailable_with_retry_info(
    channel: grpc.aio.Channel, instructor: Caller, caller: Caller, backend: Backend
) -> None:
    course, _ = await published_course(instructor)
    async with projector_stopped(backend):
        token = (await enroll(caller, course.id)).consistency_token
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await progress(channel).ListMyEnrollments(
                learning_pb2.ListMyEnrollmentsRequest(),
                metadata=caller.metadata(token),
                timeout=30,
            )
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert any("RetryInfo" in d.type_url for d in rich_status(err.value).details)
    reply = await progress(channel).ListMyEnrollments(
        learning_pb2.ListMyEnrollmentsRequest(), metadata=caller.metadata(token)
    )
    assert course.id in [p.course_id for p in reply.enrollments]
