"""Rate limits: per principal and method class, login also per target account, RetryInfo on
RESOURCE_EXHAUSTED, and one budget shared by several server processes through Redis.

Each test runs its own server with small limits (the session server of conftest has limits too
high to reach), on the session's databases and signing keys, so tokens issued by the session
server are valid here and setting up callers does not spend the budgets under test.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from learnflow.security.denials import ERROR_DOMAIN, REASON_RATE_LIMITED
from learnflow.server import Backend, build
from learnflow.settings import REPO_ROOT, Settings
from learnflow.v1 import identity_pb2, identity_pb2_grpc
from tests.support import PASSWORD, Caller, rich_status

HIGH = "100000/minute"
REDIS_URL = os.environ.get("LEARNFLOW_REDIS_URL") or (
    f"redis://127.0.0.1:{os.environ.get('LEARNFLOW_REDIS_PORT', '56379')}/0"
)

Metadata = tuple[tuple[str, str], ...]


def client(address: str, caller: Caller | None = None) -> Metadata:
    """Metadata of a call relayed by the local gateway for a client at `address`."""
    forwarded: Metadata = (("x-forwarded-for", address),)
    return forwarded + (caller.metadata() if caller else ())


def fresh_address() -> str:
    """A documentation-range address (RFC 5737) not used by any other test."""
    n = uuid.uuid4().int
    return f"203.0.{(n >> 8) % 256}.{n % 254 + 1}"


@dataclass(frozen=True)
class Outcome:
    code: grpc.StatusCode
    retry_delay_s: float = 0.0
    scope: str = ""  # the rate limit's ErrorInfo "scope", "" when none
    limit: str = ""


async def attempt(call: Awaitable[Any]) -> Outcome:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
            return Outcome(error.code())
        delay, scope, limit = 0.0, "", ""
        for detail in rich_status(error).details:
            retry = error_details_pb2.RetryInfo()
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(retry):
                delay = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
            elif detail.Unpack(info) and info.domain == ERROR_DOMAIN:
                assert info.reason == REASON_RATE_LIMITED
                scope, limit = info.metadata["scope"], info.metadata["limit"]
        return Outcome(error.code(), delay, scope, limit)
    return Outcome(grpc.StatusCode.OK)


def assert_exhausted(outcome: Outcome, scope: str) -> None:
    assert outcome.code == grpc.StatusCode.RESOURCE_EXHAUSTED, outcome
    assert outcome.scope == scope, outcome
    # The windows are per minute: the client is told to come back within that minute.
    assert 0 < outcome.retry_delay_s <= 60, outcome


@asynccontextmanager
async def limited_server(
    settings: Settings,
    listen: str = "127.0.0.1:0",
    *,
    read: str = HIGH,
    auth: str = HIGH,
    login_per_account: str = HIGH,
    storage: str = "memory://",
) -> AsyncIterator[tuple[Backend, grpc.aio.Channel]]:
    """A second in-process server on the session's databases with the given limits."""
    limited = dataclasses.replace(
        settings,
        grpc_listen=listen,
        rate_limit_read=read,
        rate_limit_write=HIGH,
        rate_limit_auth=auth,
        rate_limit_login_per_account=login_per_account,
        rate_limit_storage=storage,
    )
    backend = await build(limited, run_projector=False)
    host = listen.rsplit(":", 1)[0]
    try:
        async with grpc.aio.insecure_channel(f"{host}:{backend.port}") as channel:
            yield backend, channel
    finally:
        await backend.close(grace_s=0.5)


def signing_keys(channel: grpc.aio.Channel, metadata: Metadata) -> Awaitable[Any]:
    """A public, cheap RPC of the `read` class."""
    return identity_pb2_grpc.IdentityServiceStub(channel).GetSigningKeys(
        identity_pb2.GetSigningKeysRequest(), metadata=metadata, timeout=10
    )


def login(
    channel: grpc.aio.Channel, email: str, metadata: Metadata, password: str = PASSWORD
) -> Awaitable[Any]:
    return identity_pb2_grpc.IdentityServiceStub(channel).CreateSession(
        identity_pb2.CreateSessionRequest(email=email, password=password),
        metadata=metadata,
        timeout=10,
    )


# ---------------------------------------------------------------- one process, memory storage


async def test_a_burst_beyond_the_limit_is_refused_with_retry_info(
    settings: Settings, channel: grpc.aio.Channel
) -> None:
    user = await Caller.register(channel)  # through the session server: no budget spent here
    async with limited_server(settings, read="3/minute") as (_, limited):
        address = fresh_address()
        burst = [await attempt(signing_keys(limited, client(address))) for _ in range(5)]
        assert [o.code for o in burst[:3]] == [grpc.StatusCode.OK] * 3
        for refused in burst[3:]:
            assert_exhausted(refused, "class:read")
            assert refused.limit == "3 per 1 minute"
        # Other principals keep their own budget: another client address, and a signed-in
        # user calling from the very same address (users are counted by id, not address).
        assert (await attempt(signing_keys(limited, client(fresh_address())))).code == (
            grpc.StatusCode.OK
        )
        assert (await attempt(signing_keys(limited, client(address, user)))).code == (
            grpc.StatusCode.OK
        )
        # ... and the exhausted one is still refused.
        assert_exhausted(await attempt(signing_keys(limited, client(address))), "class:read")


async def test_budgets_are_per_user_and_per_method_class(
    settings: Settings, channel: grpc.aio.Channel
) -> None:
    first, second = await Caller.register(channel), await Caller.register(channel)
    address = fresh_address()  # both users behind one address (same NAT)
    async with limited_server(settings, read="2/minute") as (_, limited):
        profiles = identity_pb2_grpc.ProfileServiceStub(limited)

        def me(who: Caller) -> Awaitable[Any]:
            # With the caller's consistency token: the profile may not be projected yet.
            consistent = (("x-consistency-token", who.consistency_token),)
            return profiles.GetCurrentUser(
                identity_pb2.GetCurrentUserRequest(), metadata=client(address, who) + consistent
            )

        assert [(await attempt(me(first))).code for _ in range(2)] == [grpc.StatusCode.OK] * 2
        assert_exhausted(await attempt(me(first)), "class:read")
        assert (await attempt(me(second))).code == grpc.StatusCode.OK
        # The write budget is separate: the handler runs (and refuses the empty request).
        revoke = identity_pb2_grpc.IdentityServiceStub(limited).RevokeSession(
            identity_pb2.RevokeSessionRequest(), metadata=client(address, first)
        )
        assert (await attempt(revoke)).code == grpc.StatusCode.INVALID_ARGUMENT


async def test_login_is_limited_per_target_account_across_client_addresses(
    settings: Settings, channel: grpc.aio.Channel
) -> None:
    victim, bystander = await Caller.register(channel), await Caller.register(channel)
    email = victim.user.email
    async with limited_server(settings, login_per_account="3/minute") as (_, limited):
        # A password-guessing botnet: every guess from a different address, so the
        # per-client budget never runs out; the per-account one does.
        guesses = [
            await attempt(login(limited, email, client(fresh_address()), password="wrong-guess"))
            for _ in range(5)
        ]
        assert [o.code for o in guesses[:3]] == [grpc.StatusCode.UNAUTHENTICATED] * 3
        for refused in guesses[3:]:
            assert_exhausted(refused, "login-account")
        # The account is throttled whatever the password and however the email is spelled.
        assert_exhausted(
            await attempt(login(limited, email.upper(), client(fresh_address()))), "login-account"
        )
        # Other accounts, even from an address that took part, are unaffected.
        bystander_login = login(limited, bystander.user.email, client(fresh_address()))
        assert (await attempt(bystander_login)).code == grpc.StatusCode.OK

        # An unknown account is throttled the same way: no way to tell which accounts exist.
        ghost = f"ghost-{uuid.uuid4().hex[:8]}@example.com"
        tries = [await attempt(login(limited, ghost, client(fresh_address()))) for _ in range(4)]
        assert [o.code for o in tries[:3]] == [grpc.StatusCode.UNAUTHENTICATED] * 3
        assert_exhausted(tries[3], "login-account")


async def test_credential_checks_are_limited_per_client(
    settings: Settings, channel: grpc.aio.Channel
) -> None:
    """One client spraying guesses over many accounts runs out of its `auth` budget."""
    async with limited_server(settings, auth="3/minute") as (_, limited):
        address = fresh_address()
        sprays = [
            await attempt(
                login(limited, f"u{i}-{uuid.uuid4().hex[:6]}@example.com", client(address))
            )
            for i in range(4)
        ]
        assert [o.code for o in sprays[:3]] == [grpc.StatusCode.UNAUTHENTICATED] * 3
        assert_exhausted(sprays[3], "class:auth")
        other = login(limited, "someone@example.com", client(fresh_address()))
        assert (await attempt(other)).code == grpc.StatusCode.UNAUTHENTICATED


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.123", 9))  # no packet is sent for a UDP connect
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") else address


async def test_x_forwarded_for_is_trusted_only_from_a_local_proxy(settings: Settings) -> None:
    """From loopback (the gateway) the header names the client; from anyone else it is
    ignored, so a remote client cannot mint itself fresh budgets by rotating it."""
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this host has no non-loopback IPv4 address to call from")
    async with limited_server(settings, listen=f"{address}:0", read="2/minute") as (
        _,
        remote,
    ):
        rotating = [await attempt(signing_keys(remote, client(fresh_address()))) for _ in range(3)]
        assert [o.code for o in rotating[:2]] == [grpc.StatusCode.OK] * 2
        assert_exhausted(rotating[2], "class:read")
    async with limited_server(settings, read="2/minute") as (_, local):
        rotating = [await attempt(signing_keys(local, client(fresh_address()))) for _ in range(3)]
        assert [o.code for o in rotating] == [grpc.StatusCode.OK] * 3


async def test_a_client_prefix_in_x_forwarded_for_does_not_mint_fresh_budgets(
    settings: Settings,
) -> None:
    """The local gateway's hop is the rightmost: whatever the client put before it is ignored,
    so rotating it gets no new budget (it used to: the leftmost entry was believed)."""
    async with limited_server(settings, read="2/minute") as (_, local):
        behind = fresh_address()
        rotating = [
            await attempt(signing_keys(local, client(f"{fresh_address()}, {behind}")))
            for _ in range(3)
        ]
        assert [o.code for o in rotating[:2]] == [grpc.StatusCode.OK] * 2
        assert_exhausted(rotating[2], "class:read")


async def test_unreachable_shared_storage_fails_closed_with_unavailable(
    settings: Settings,
) -> None:
    """Without its counters the server neither serves unmetered nor answers INTERNAL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]  # nothing listens once the socket is closed
    dead = f"redis://127.0.0.1:{closed_port}/0"
    async with limited_server(settings, storage=dead) as (_, limited):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await signing_keys(limited, client(fresh_address()))
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, refused.value
    delays = []
    for detail in rich_status(refused.value).details:
        retry = error_details_pb2.RetryInfo()
        if detail.Unpack(retry):
            delays.append(retry.retry_delay.seconds)
    assert delays and delays[0] > 0


# ------------------------------------------------------------- two processes, shared storage


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@contextmanager
def _spawn(
    settings: Settings, env: dict[str, str], tmp: Path, name: str
) -> Iterator[ServerProcess]:
    port = _free_port()
    log = tmp / f"{name}.log"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LEARNFLOW_")}
    full_env.update(
        LEARNFLOW_ENV="test",
        LEARNFLOW_GRPC_LISTEN=f"127.0.0.1:{port}",
        LEARNFLOW_POSTGRES_URL=settings.postgres_url,
        LEARNFLOW_MONGO_URL=settings.mongo_url,
        LEARNFLOW_MONGO_DATABASE=settings.mongo_database,
        LEARNFLOW_SIGNING_KEYS_DIR=str(settings.signing_keys_dir),
        LEARNFLOW_STATE_DIR=str(tmp / name),
        LEARNFLOW_BCRYPT_ROUNDS="4",
        LEARNFLOW_LOG_LEVEL="WARNING",
        LEARNFLOW_METRICS_LISTEN="",  # concurrent servers: no shared metrics port
        **env,
    )
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "learnflow", "serve"],
            cwd=REPO_ROOT,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield ServerProcess(process, port, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


async def _wait_serving(server: ServerProcess, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            if server.process.poll() is not None:
                raise AssertionError(
                    f"server exited with {server.process.returncode}:\n{server.output()}"
                )
            try:
                answer = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"server not SERVING after {timeout_s}s:\n{server.output()}")
            await asyncio.sleep(0.2)


BUDGET = 5


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own in the shared Redis, its keys deleted afterwards."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis unreachable at {REDIS_URL} ({exc}); start it with `make up`")
    prefix = f"lftest-{uuid.uuid4().hex[:12]}"
    yield prefix
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.mark.parametrize(
    ("storage", "allowed"),
    [("redis", BUDGET), ("memory", 2 * BUDGET)],
    ids=["redis-shared-budget", "memory-budget-per-process"],
)
async def test_two_server_processes_share_one_budget_through_redis(
    backend: Backend,  # makes sure the databases, schema and signing key exist
    settings: Settings,
    tmp_path: Path,
    redis_prefix: str,
    storage: str,
    allowed: int,
) -> None:
    env = {
        "LEARNFLOW_RATE_LIMIT_READ": f"{BUDGET}/minute",
        "LEARNFLOW_RATE_LIMIT_STORAGE": REDIS_URL if storage == "redis" else "memory://",
        "LEARNFLOW_RATE_LIMIT_KEY_PREFIX": redis_prefix,
    }
    with (
        _spawn(settings, env, tmp_path, "first") as first,
        _spawn(settings, env, tmp_path, "second") as second,
    ):
        await asyncio.gather(_wait_serving(first), _wait_serving(second))
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{first.port}") as one,
            grpc.aio.insecure_channel(f"127.0.0.1:{second.port}") as two,
        ):
            # One client, its calls spread over both processes by a load balancer.
            address = fresh_address()
            calls = 2 * BUDGET + 2
            results = [
                await attempt(signing_keys((one, two)[i % 2], client(address)))
                for i in range(calls)
            ]
            codes = [o.code for o in results]
            assert codes.count(grpc.StatusCode.OK) == allowed, codes
            assert codes[:allowed] == [grpc.StatusCode.OK] * allowed, codes
            for refused in results[allowed:]:
                assert_exhausted(refused, "class:read")

            # The same when the burst arrives all at once on both processes.
            address = fresh_address()
            together = await asyncio.gather(
                *(attempt(signing_keys((one, two)[i % 2], client(address))) for i in range(calls))
            )
            assert [o.code for o in together].count(grpc.StatusCode.OK) == allowed, together

    counters = list(redis.Redis.from_url(REDIS_URL).scan_iter(f"{redis_prefix}*"))
    if storage == "redis":
        assert counters, "the shared counters should live in Redis under the test's prefix"
    else:
        assert not counters, "memory storage must not touch Redis"
