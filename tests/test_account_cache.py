"""Authenticated calls read no database once the account is known, yet disabling a user, "log
out everywhere" and a role change take effect within a second on every server process: a
second server runs here as a real `learnflow serve` process (issue 13)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest

from learnflow.server import Backend
from learnflow.settings import Settings
from learnflow.v1 import access_pb2, identity_pb2, identity_pb2_grpc
from tests.server_process import server_process
from tests.support import Caller


@pytest.fixture
async def other_process(settings: Settings) -> AsyncIterator[str]:
    """`learnflow serve` on the session's databases and signing keys; yields its address."""
    async with server_process(settings) as server:
        yield server.target


async def _me(channel: grpc.aio.Channel, who: Caller) -> grpc.StatusCode:
    try:
        await identity_pb2_grpc.ProfileServiceStub(channel).GetCurrentUser(
            identity_pb2.GetCurrentUserRequest(),
            metadata=who.metadata(who.consistency_token),
            timeout=5,
        )
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def _refused_within(
    channel: grpc.aio.Channel, who: Caller, change: Callable[[], Awaitable[Any]]
) -> float:
    assert await _me(channel, who) == grpc.StatusCode.OK  # known, and cached
    await change()
    started = time.monotonic()
    while await _me(channel, who) == grpc.StatusCode.OK:
        assert time.monotonic() - started < 5, "the change never took effect"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_steady_state_authenticated_calls_read_no_database(
    backend: Backend, channel: grpc.aio.Channel, caller: Caller
) -> None:
    assert backend.accounts is not None
    assert await _me(channel, caller) == grpc.StatusCode.OK
    before = backend.accounts.lookups
    for _ in range(20):
        assert await _me(channel, caller) == grpc.StatusCode.OK
    assert backend.accounts.lookups == before


async def test_changes_reach_another_server_process_within_a_second(
    other_process: str, channel: grpc.aio.Channel, admin: Caller
) -> None:
    identity = identity_pb2_grpc.IdentityServiceStub(channel)
    async with grpc.aio.insecure_channel(other_process) as remote:
        disabled = await Caller.register(channel)
        took = await _refused_within(
            remote,
            disabled,
            lambda: identity.SetUserDisabled(
                identity_pb2.SetUserDisabledRequest(user_id=disabled.user_id, disabled=True),
                metadata=admin.metadata(),
            ),
        )
        assert took < 1.0

        logged_out = await Caller.register(channel)
        took = await _refused_within(
            remote,
            logged_out,
            lambda: identity.RevokeSession(
                identity_pb2.RevokeSessionRequest(all_sessions=True),
                metadata=logged_out.metadata(),
            ),
        )
        assert took < 1.0

        promoted = await Caller.register(channel)
        took = await _refused_within(
            remote,
            promoted,
            lambda: identity.SetUserRole(
                identity_pb2.SetUserRoleRequest(
                    user_id=promoted.user_id, role=access_pb2.ROLE_INSTRUCTOR
                ),
                metadata=admin.metadata(),
            ),
        )
        assert took < 1.0


async def test_this_process_forgets_an_account_when_its_change_commits(
    backend: Backend, channel: grpc.aio.Channel, caller: Caller
) -> None:
    # Without waiting for the database's announcement: the client that changed its password
    # may call this same process again before the notification arrives.
    assert backend.accounts is not None
    assert await _me(channel, caller) == grpc.StatusCode.OK  # cached now
    forgotten: list[Any] = []
    backend.db.account_listeners.append(forgotten.append)
    try:
        with pytest.raises(RuntimeError):
            async with backend.db.transaction() as uow:
                uow.account_changed(uuid.UUID(caller.user_id))
                raise RuntimeError("rolled back")
        assert forgotten == []  # nothing committed, nothing forgotten
        async with backend.db.transaction() as uow:
            uow.account_changed(uuid.UUID(caller.user_id))
            assert forgotten == []  # not before the commit
        assert forgotten == [uuid.UUID(caller.user_id)]
    finally:
        backend.db.account_listeners.remove(forgotten.append)
    before = backend.accounts.lookups
    assert await _me(channel, caller) == grpc.StatusCode.OK
    assert backend.accounts.lookups == before + 1  # read again from the database
