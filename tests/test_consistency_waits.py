"""Consistency tokens: bad ones are refused at once, waits are bounded in number and woken by
the projector's progress (issue 12: a token from the future parked requests for 5 s)."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from learnflow.errors import InvalidArgument, ResourceExhausted
from learnflow.positions import EventKey
from learnflow.projections.watcher import CheckpointWatcher
from learnflow.server import Backend
from learnflow.v1 import courses_pb2
from tests.commands_support import courses
from tests.read_support import catalog
from tests.support import Caller, field_violations, rich_status


@pytest.mark.parametrize(
    "token", ["99999999999.1", "abc", "1.2.3", "-1.5", " 1.2", "1." + "9" * 30, "1e3.4"]
)
async def test_a_malformed_or_future_token_is_refused_at_once(
    channel: grpc.aio.Channel, token: str
) -> None:
    started = time.perf_counter()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await catalog(channel).ListCourses(
            courses_pb2.ListCoursesRequest(), metadata=(("x-consistency-token", token),)
        )
    assert time.perf_counter() - started < 0.5
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "x-consistency-token" in field_violations(refused.value)


async def test_a_token_just_returned_by_a_command_is_waited_for_not_refused(
    channel: grpc.aio.Channel, instructor: Caller
) -> None:
    for i in range(20):
        reply = await courses(channel).CreateCourse(
            courses_pb2.CreateCourseRequest(course=courses_pb2.Course(title=f"Fresh {i}")),
            metadata=instructor.metadata(),
        )
        got = await catalog(channel).GetCourse(
            courses_pb2.GetCourseRequest(course_id=reply.course.id),
            metadata=instructor.metadata(reply.consistency_token),
        )
        assert got.course.title == f"Fresh {i}"


async def test_waiters_are_bounded_per_client_and_in_total(backend: Backend) -> None:
    checkpoint = await backend.store.checkpoint(await backend.store.active(max_age_s=0))
    beyond = EventKey(checkpoint.txid + 10**6, 1).token()  # valid, never reached in this test

    async def head() -> EventKey:
        return EventKey(10**12, 1)

    watcher = CheckpointWatcher(backend.store, head, max_waiters_per_client=2, max_waiters=3)
    waits = [asyncio.create_task(watcher.wait_for(beyond, "addr:a", 5)) for _ in range(2)]
    await asyncio.sleep(0.05)
    with pytest.raises(ResourceExhausted):
        await watcher.wait_for(beyond, "addr:a", 5)  # a third from the same client
    third = asyncio.create_task(watcher.wait_for(beyond, "addr:b", 5))
    await asyncio.sleep(0.05)
    with pytest.raises(ResourceExhausted):
        await watcher.wait_for(beyond, "addr:c", 5)  # a fourth in all
    assert watcher.waiting == 3
    for task in [*waits, third]:
        task.cancel()
    await asyncio.gather(*waits, third, return_exceptions=True)
    assert watcher.waiting == 0
    await watcher.close()


async def test_two_hundred_future_tokens_share_one_look_at_the_head(backend: Backend) -> None:
    calls = 0

    async def head() -> EventKey:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return EventKey(1000, 1)

    watcher = CheckpointWatcher(backend.store, head)
    started = time.perf_counter()
    results = await asyncio.gather(
        *(watcher.wait_for("99999999999.1", f"addr:{i}", 5) for i in range(200)),
        return_exceptions=True,
    )
    assert all(isinstance(r, InvalidArgument) for r in results)
    assert calls <= 2
    assert time.perf_counter() - started < 1.0
    await watcher.close()


async def test_the_refusal_names_the_header_in_the_status_details(
    channel: grpc.aio.Channel,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await catalog(channel).ListCourses(
            courses_pb2.ListCoursesRequest(), metadata=(("x-consistency-token", "nope"),)
        )
    assert rich_status(refused.value).code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
