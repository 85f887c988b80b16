"""Commands under concurrency, against the real server and PostgreSQL: capacity holds when
100 learners race for 10 seats, and a retried `request_id` has exactly one effect."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2

from learnflow.v1 import courses_pb2, learning_pb2
from tests.commands_support import Pg, courses, fails, learning, published_course
from tests.support import Caller, field_violations, rich_status

T = TypeVar("T")
M = TypeVar("M", bound=Message)


async def bounded(n: int, jobs: list[Callable[[], Awaitable[T]]]) -> list[T]:
    gate = asyncio.Semaphore(n)

    async def run(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await job()

    return await asyncio.gather(*(run(job) for job in jobs))


async def outcomes(
    calls: list[Awaitable[M]],
) -> list[M | grpc.aio.AioRpcError]:
    """Every call started at once; each one's reply or its gRPC error."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if not isinstance(result, Message | grpc.aio.AioRpcError):
            raise result  # anything but a reply or a status is a test failure
    return results  # type: ignore[return-value]


def all_replies(results: list[M | grpc.aio.AioRpcError]) -> list[M]:
    errors = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert not errors, [(e.code(), e.details()) for e in errors]
    return [r for r in results if not isinstance(r, grpc.aio.AioRpcError)]


async def test_capacity_holds_under_100_concurrent_enrollments(
    channel: grpc.aio.Channel, instructor: Caller, pg: Pg
) -> None:
    course, _ = await published_course(instructor, capacity=10)

    def register(i: int) -> Callable[[], Awaitable[Caller]]:
        return lambda: Caller.register(channel, name=f"Learner {i}")

    learners = await bounded(20, [register(i) for i in range(100)])
    assert len({learner.user_id for learner in learners}) == 100
    stub = learning(channel)

    results = await outcomes(
        [
            stub.EnrollInCourse(
                learning_pb2.EnrollInCourseRequest(course_id=course.id),
                metadata=learner.metadata(),
            )
            for learner in learners
        ]
    )

    won = [r for r in results if isinstance(r, learning_pb2.EnrollInCourseResponse)]
    lost = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(won) == 10
    assert Counter(e.code() for e in lost) == {grpc.StatusCode.FAILED_PRECONDITION: 90}
    for error in lost:
        assert error.details() == "the course is full (10 seats taken)"
        [detail] = rich_status(error).details
        failure = error_details_pb2.PreconditionFailure()
        assert detail.Unpack(failure)
        assert [(v.type, v.subject) for v in failure.violations] == [
            ("CAPACITY", f"courses/{course.id}")
        ]

    assert (
        await pg.value(
            "SELECT count(*) FROM enrollments WHERE course_id = %s AND state = 'active'", course.id
        )
        == 10
    )
    assert (
        await pg.value("SELECT active_enrollment_count FROM courses WHERE id = %s", course.id) == 10
    )
    assert {r.enrollment.user_id for r in won} == set(
        user_id
        for (user_id,) in await pg.rows(
            "SELECT user_id::text FROM enrollments WHERE course_id = %s", course.id
        )
    )
    activated = await pg.value(
        "SELECT count(*) FROM events WHERE event_type = 'enrollment.activated'"
        " AND aggregate_id LIKE %s",
        f"{course.id}:%",
    )
    assert activated == 10
    audited = await pg.value(
        "SELECT count(*) FROM audit_log WHERE action = 'enrollment.enroll' AND resource LIKE %s",
        f"courses/{course.id}/enrollments/%",
    )
    assert audited == 10


async def test_the_same_request_id_five_times_at_once_creates_one_course(
    instructor: Caller, pg: Pg
) -> None:
    request_id = uuid.uuid4().hex
    title = f"Idempotent {request_id[:8]}"
    request = courses_pb2.CreateCourseRequest(
        course=courses_pb2.Course(title=title, capacity=3), request_id=request_id
    )
    stub = courses(instructor.channel)
    before = await pg.counts()

    replies = all_replies(
        await outcomes(
            [stub.CreateCourse(request, metadata=instructor.metadata()) for _ in range(5)]
        )
    )
    assert len({r.SerializeToString(deterministic=True) for r in replies}) == 1
    reply = replies[0]
    assert await pg.rows("SELECT id::text FROM courses WHERE title = %s", title) == [
        (reply.course.id,)
    ]
    assert len(await pg.events(reply.course.id)) == 1
    assert len(await pg.audit(f"courses/{reply.course.id}")) == 1
    after = await pg.counts()
    delta = {table: after[table] - before[table] for table in after}
    # One course, one audit row with its audit.recorded event, one course.created event,
    # one idempotency key: the effect of exactly one command.
    assert {t: d for t, d in delta.items() if d} == {
        "courses": 1,
        "audit_log": 1,
        "events": 2,
        "idempotency_keys": 1,
    }

    # A later retry answers the same and writes nothing.
    async with pg.unchanged():
        again = await stub.CreateCourse(request, metadata=instructor.metadata())
    assert again == reply


async def test_the_same_enrollment_request_five_times_at_once_enrolls_once(
    instructor: Caller, caller: Caller, pg: Pg
) -> None:
    course, _ = await published_course(instructor, capacity=10)
    request = learning_pb2.EnrollInCourseRequest(course_id=course.id, request_id="enroll-1")
    stub = learning(caller.channel)

    replies = all_replies(
        await outcomes([stub.EnrollInCourse(request, metadata=caller.metadata()) for _ in range(5)])
    )
    assert len({r.SerializeToString(deterministic=True) for r in replies}) == 1
    assert (
        await pg.value("SELECT active_enrollment_count FROM courses WHERE id = %s", course.id) == 1
    )
    assert [t for t, _ in await pg.events(f"{course.id}:{caller.user_id}")] == [
        "enrollment.activated"
    ]
    assert len(await pg.audit(f"courses/{course.id}/enrollments/{caller.user_id}")) == 1


async def test_a_request_id_reused_for_a_different_request_is_refused(
    instructor: Caller, pg: Pg
) -> None:
    stub = courses(instructor.channel)
    request_id = uuid.uuid4().hex
    first = await stub.CreateCourse(
        courses_pb2.CreateCourseRequest(
            course=courses_pb2.Course(title="The first payload"), request_id=request_id
        ),
        metadata=instructor.metadata(),
    )
    async with fails(grpc.StatusCode.INVALID_ARGUMENT, pg) as err:
        await stub.CreateCourse(
            courses_pb2.CreateCourseRequest(
                course=courses_pb2.Course(title="A different payload"), request_id=request_id
            ),
            metadata=instructor.metadata(),
        )
    assert field_violations(err.value) == {"request_id": "already used for a different request"}
    assert await pg.value("SELECT title FROM courses WHERE id = %s", first.course.id) == (
        "The first payload"
    )
    async with fails(grpc.StatusCode.INVALID_ARGUMENT, pg) as err:
        await stub.CreateCourse(
            courses_pb2.CreateCourseRequest(
                course=courses_pb2.Course(title="Too long an id"), request_id="x" * 129
            ),
            metadata=instructor.metadata(),
        )
    assert set(field_violations(err.value)) == {"request_id"}


async def test_request_ids_belong_to_their_caller(
    channel: grpc.aio.Channel, postgres_url: str, instructor: Caller, pg: Pg
) -> None:
    other = await Caller.with_role(channel, postgres_url, "instructor")
    request = courses_pb2.CreateCourseRequest(
        course=courses_pb2.Course(title="Shared request id"), request_id="course-1"
    )
    mine = await courses(channel).CreateCourse(request, metadata=instructor.metadata())
    theirs = await courses(channel).CreateCourse(request, metadata=other.metadata())
    assert mine.course.id != theirs.course.id
    assert theirs.course.owner_id == other.user_id


async def test_a_refused_command_does_not_consume_its_request_id(
    channel: grpc.aio.Channel, instructor: Caller, caller: Caller, pg: Pg
) -> None:
    course, _ = await published_course(instructor, capacity=1)
    first = await Caller.register(channel)
    await learning(channel).EnrollInCourse(
        learning_pb2.EnrollInCourseRequest(course_id=course.id), metadata=first.metadata()
    )
    request = learning_pb2.EnrollInCourseRequest(course_id=course.id, request_id="seat")
    async with fails(grpc.StatusCode.FAILED_PRECONDITION, pg):
        await learning(channel).EnrollInCourse(request, metadata=caller.metadata())
    await learning(channel).WithdrawEnrollment(
        learning_pb2.WithdrawEnrollmentRequest(course_id=course.id), metadata=first.metadata()
    )
    # The retry runs the command anew: the refusal was not stored as the answer.
    reply = await learning(channel).EnrollInCourse(request, metadata=caller.metadata())
    assert reply.enrollment.state == learning_pb2.ENROLLMENT_STATE_ACTIVE
