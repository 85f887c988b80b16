"""Sessions that an attacker can neither lock out cheaply, nor enter with a truncated password,
nor keep using after a stolen refresh token is detected (issue 12, "Low").

The rate-limit test runs a server of its own with small budgets (as test_rate_limits.py does).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import bcrypt
import grpc
import pytest

from learnflow.security.passwords import MAX_PASSWORD_BYTES, PasswordHasher
from learnflow.server import build
from learnflow.settings import Settings
from learnflow.v1 import identity_pb2, identity_pb2_grpc
from tests.support import PASSWORD, Caller
from tests.test_rate_limits import assert_exhausted, attempt, client, fresh_address, login

# ------------------------------------------------------------------ failed logins, not logins


@asynccontextmanager
async def login_budgets(
    settings: Settings, per_account: str, per_address: str
) -> AsyncIterator[grpc.aio.Channel]:
    limited = dataclasses.replace(
        settings,
        rate_limit_login_per_account=per_account,
        rate_limit_login_per_account_address=per_address,
    )
    backend = await build(limited, run_projector=False)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{backend.port}") as channel:
            yield channel
    finally:
        await backend.close(grace_s=0.5)


async def test_only_failed_logins_count_and_others_failures_do_not_lock_the_owner_out(
    settings: Settings, channel: grpc.aio.Channel
) -> None:
    victim = await Caller.register(channel)  # through the session server: no budget spent
    email = victim.user.email
    per_account, per_address = 6, 3
    async with login_budgets(settings, f"{per_account}/minute", f"{per_address}/minute") as lf:
        home = fresh_address()
        # Successful logins spend nothing: more of them than either budget.
        for _ in range(2 * per_account):
            assert (await attempt(login(lf, email, client(home)))).code == grpc.StatusCode.OK

        # An attacker at one address spends that address's budget for the account ...
        attacker = fresh_address()
        guesses = [
            await attempt(login(lf, email, client(attacker), password="wrong-guess"))
            for _ in range(per_address + 2)
        ]
        assert [o.code for o in guesses[:per_address]] == (
            [grpc.StatusCode.UNAUTHENTICATED] * per_address
        )
        for refused in guesses[per_address:]:  # refused before any password check
            assert_exhausted(refused, "login-account-address")
        # ... which refuses even the right password from there, but not the owner elsewhere.
        assert_exhausted(await attempt(login(lf, email, client(attacker))), "login-account-address")
        assert (await attempt(login(lf, email, client(home)))).code == grpc.StatusCode.OK

        # Failures from everywhere add up to the account's budget; only then is everyone
        # refused (the default budget, 100 an hour, makes that expensive).
        for _ in range(per_account - per_address):
            wrong = login(lf, email, client(fresh_address()), password="wrong-guess")
            assert (await attempt(wrong)).code == grpc.StatusCode.UNAUTHENTICATED
        assert_exhausted(await attempt(login(lf, email, client(home))), "login-account")

        # Unknown accounts are counted the same way: nothing tells which accounts exist.
        ghost = f"ghost-{uuid.uuid4().hex[:8]}@example.com"
        tries = [await attempt(login(lf, ghost, client(attacker))) for _ in range(per_address + 1)]
        assert [o.code for o in tries[:per_address]] == (
            [grpc.StatusCode.UNAUTHENTICATED] * per_address
        )
        assert_exhausted(tries[per_address], "login-account-address")


def test_default_budgets_make_lock_out_expensive() -> None:
    defaults = Settings()
    assert defaults.rate_limit_login_per_account == "100/hour"
    assert defaults.rate_limit_login_per_account_address == "10/minute"


# ------------------------------------------------------------------ passwords beyond 72 bytes


async def test_a_password_beyond_72_bytes_never_logs_in(
    identity: identity_pb2_grpc.IdentityServiceAsyncStub,
) -> None:
    email = f"long-{uuid.uuid4().hex[:10]}@example.com"
    longest = "p" * (MAX_PASSWORD_BYTES - 2) + "é"  # 72 bytes of UTF-8, 71 characters
    await identity.RegisterUser(
        identity_pb2.RegisterUserRequest(email=email, password=longest, display_name="Long")
    )
    ok = await identity.CreateSession(
        identity_pb2.CreateSessionRequest(email=email, password=longest)
    )
    assert ok.access_token
    for extended in (longest + "-suffix", longest + "x"):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await identity.CreateSession(
                identity_pb2.CreateSessionRequest(email=email, password=extended)
            )
        # Exactly the answer of a wrong password.
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert refused.value.details() == "invalid email or password"


async def test_an_over_long_password_costs_one_bcrypt_check_and_never_matches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hasher = PasswordHasher(rounds=4)
    longest = "k" * MAX_PASSWORD_BYTES
    stored = await hasher.hash(longest)
    checked: list[bytes] = []
    real_check = bcrypt.checkpw

    def counting_check(password: bytes, hashed: bytes) -> bool:
        checked.append(hashed)
        return real_check(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting_check)  # the module passwords uses
    assert await hasher.verify(longest, stored)
    assert not await hasher.verify(longest + "-suffix", stored)
    assert not await hasher.verify(longest + "-suffix", None)  # unknown account
    # One bcrypt verification each, the refused ones against the decoy: the same work (and
    # time) as a wrong password.
    assert checked == [stored, hasher._decoy, hasher._decoy]


# ------------------------------------------------------------------ refresh-token reuse


async def test_refresh_token_reuse_ends_the_sessions_access_tokens_at_once(
    channel: grpc.aio.Channel, identity: identity_pb2_grpc.IdentityServiceAsyncStub
) -> None:
    victim = await Caller.register(channel)
    profiles = identity_pb2_grpc.ProfileServiceStub(channel)

    async def me(access_token: str) -> grpc.StatusCode:
        metadata = (
            ("authorization", f"Bearer {access_token}"),
            ("x-consistency-token", victim.consistency_token),
        )
        try:
            await profiles.GetCurrentUser(identity_pb2.GetCurrentUserRequest(), metadata=metadata)
        except grpc.aio.AioRpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    # The same user on another device: its own session (refresh family).
    other = await identity.CreateSession(
        identity_pb2.CreateSessionRequest(email=victim.user.email, password=PASSWORD)
    )
    # The refresh token is stolen; one party rotates it, the other presents it again.
    rotated = await identity.RefreshSession(
        identity_pb2.RefreshSessionRequest(refresh_token=victim.refresh_token)
    )
    assert await me(rotated.access_token) == grpc.StatusCode.OK
    with pytest.raises(grpc.aio.AioRpcError) as reuse:
        await identity.RefreshSession(
            identity_pb2.RefreshSessionRequest(refresh_token=victim.refresh_token)
        )
    assert reuse.value.code() == grpc.StatusCode.UNAUTHENTICATED

    # Every access token issued to that family is refused at once, not when it expires ...
    assert await me(victim.access_token) == grpc.StatusCode.UNAUTHENTICATED
    assert await me(rotated.access_token) == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as family:
        await identity.RefreshSession(
            identity_pb2.RefreshSessionRequest(refresh_token=rotated.refresh_token)
        )
    assert family.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # ... while the other device's session goes on after one ordinary refresh.
    assert await me(other.access_token) == grpc.StatusCode.UNAUTHENTICATED
    renewed = await identity.RefreshSession(
        identity_pb2.RefreshSessionRequest(refresh_token=other.refresh_token)
    )
    assert await me(renewed.access_token) == grpc.StatusCode.OK
