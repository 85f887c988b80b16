"""Server streams are bounded (issue 12: watch streams outlived logout and account disable,
had no deadline, and 150 at once for one user were accepted)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from learnflow.server import Backend, build
from learnflow.settings import Settings
from learnflow.v1 import identity_pb2, identity_pb2_grpc, learning_pb2
from tests.commands_support import enroll, published_course
from tests.read_support import progress
from tests.support import Caller


def watch(who: Caller, course_id: str, channel: grpc.aio.Channel | None = None) -> Any:
    return progress(channel or who.channel).WatchCourseProgress(
        learning_pb2.WatchCourseProgressRequest(course_id=course_id),
        metadata=who.metadata(),
    )


async def _ended_with(call: Any, within_s: float) -> tuple[grpc.StatusCode, float, int]:
    """Reads `call` to its end: its status, when it ended, and how many messages came."""
    started = time.monotonic()
    received = 0
    try:
        async with asyncio.timeout(within_s):
            while await call.read() is not grpc.aio.EOF:  # type: ignore[attr-defined]
                received += 1
    except grpc.aio.AioRpcError as exc:
        return exc.code(), time.monotonic() - started, received
    return grpc.StatusCode.OK, time.monotonic() - started, received


async def _enrolled(instructor: Caller, learner: Caller, backend: Backend) -> str:
    course, _ = await published_course(instructor)
    enrolled = await enroll(learner, course.id)
    await backend.store.wait_for(enrolled.consistency_token, 10)
    return course.id


async def test_logging_out_everywhere_ends_the_stream_within_a_second(
    backend: Backend, instructor: Caller, caller: Caller
) -> None:
    course_id = await _enrolled(instructor, caller, backend)
    call = watch(caller, course_id)
    first = await asyncio.wait_for(call.read(), 5)
    assert first.progress.course_id == course_id
    ending = asyncio.create_task(_ended_with(call, 5))
    await asyncio.sleep(0.2)
    revoked = time.monotonic()
    await identity_pb2_grpc.IdentityServiceStub(caller.channel).RevokeSession(
        identity_pb2.RevokeSessionRequest(all_sessions=True), metadata=caller.metadata()
    )
    code, _, _ = await ending
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert time.monotonic() - revoked < 1.5


async def test_disabling_the_account_ends_the_stream_within_a_second(
    backend: Backend, instructor: Caller, caller: Caller, admin: Caller
) -> None:
    course_id = await _enrolled(instructor, caller, backend)
    call = watch(caller, course_id)
    await asyncio.wait_for(call.read(), 5)
    ending = asyncio.create_task(_ended_with(call, 5))
    disabled = time.monotonic()
    await identity_pb2_grpc.IdentityServiceStub(admin.channel).SetUserDisabled(
        identity_pb2.SetUserDisabledRequest(user_id=caller.user_id, disabled=True),
        metadata=admin.metadata(),
    )
    code, _, _ = await ending
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert time.monotonic() - disabled < 1.5


@pytest.fixture
async def strict(settings: Settings) -> AsyncIterator[Backend]:
    """A second server with tight stream bounds (the session's projector feeds both)."""
    backend = await build(
        dataclasses.replace(
            settings,
            access_token_ttl_s=30,
            streams_per_user=2,
            stream_max_duration_s=2.0,
            stream_heartbeat_s=0.3,
        ),
        run_projector=False,
    )
    yield backend
    await backend.close(grace_s=1)


async def test_streams_are_capped_per_user_end_after_their_lifetime_and_beat(
    strict: Backend, backend: Backend, instructor: Caller
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{strict.port}") as channel:
        learner = await Caller.register(channel)
        course_id = await _enrolled(instructor, learner, backend)
        first, second = watch(learner, course_id, channel), watch(learner, course_id, channel)
        await asyncio.wait_for(first.read(), 5)
        await asyncio.wait_for(second.read(), 5)
        third = watch(learner, course_id, channel)
        code, _, _ = await _ended_with(third, 5)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        # Nothing changes, yet heartbeats arrive; then the stream ends at its lifetime (2 s),
        # long before the access token expires.
        code, lasted, beats = await _ended_with(first, 5)
        assert code == grpc.StatusCode.OK
        assert 1.0 < lasted < 3.0
        assert beats >= 3
        second.cancel()
        await asyncio.sleep(0.1)
        # The closed streams left room for new ones.
        again = watch(learner, course_id, channel)
        assert (await asyncio.wait_for(again.read(), 5)).progress.course_id == course_id
        again.cancel()


async def test_a_stream_ends_when_its_access_token_expires(
    settings: Settings, backend: Backend, instructor: Caller
) -> None:
    short = await build(
        dataclasses.replace(settings, access_token_ttl_s=2, stream_heartbeat_s=60),
        run_projector=False,
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{short.port}") as channel:
            learner = await Caller.register(channel)
            course_id = await _enrolled(instructor, learner, backend)
            call = watch(learner, course_id, channel)
            await asyncio.wait_for(call.read(), 5)
            code, lasted, _ = await _ended_with(call, 6)
            assert code == grpc.StatusCode.UNAUTHENTICATED
            assert lasted < 3.0
    finally:
        await short.close(grace_s=1)
