"""Neither a password-reset request nor a registration tells, by its time, whether the email
has an account (production bcrypt cost, as in test_commands_login_timing).

A server of its own on the same database, with the mail budgets out of the way (they are
tested elsewhere) so that every known-account request does its full work, mail included.
The two kinds interleave (ABBA) so that drift in the machine's load falls on both; medians
compared.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest

from learnflow.server import Backend, build
from learnflow.settings import Settings
from learnflow.v1 import identity_pb2, identity_pb2_grpc
from tests.support import PASSWORD

PRODUCTION_COST = 12
UNLIMITED = "100000/minute"


@pytest.fixture(scope="module")
async def cost12(settings: Settings) -> AsyncIterator[Backend]:
    backend = await build(
        dataclasses.replace(
            settings,
            bcrypt_rounds=PRODUCTION_COST,
            rate_limit_password_reset_per_email=UNLIMITED,
            rate_limit_password_reset_per_account=UNLIMITED,
            rate_limit_registration_notice=UNLIMITED,
        ),
        run_projector=False,
    )
    yield backend
    await backend.close(grace_s=1)


async def _medians(
    known: Callable[[], Awaitable[None]], unknown: Callable[[], Awaitable[None]], samples: int
) -> tuple[float, float]:
    async def timed(call: Callable[[], Awaitable[None]]) -> float:
        started = time.perf_counter()
        await call()
        return time.perf_counter() - started

    await known()  # warm up both paths (connections, thread pool)
    await unknown()
    times: dict[bool, list[float]] = {True: [], False: []}
    for i in range(samples):
        order = (True, False) if i % 2 == 0 else (False, True)
        for is_known in order:
            times[is_known].append(await timed(known if is_known else unknown))
    return statistics.median(times[True]), statistics.median(times[False])


def _difference(a: float, b: float) -> float:
    return abs(a - b) / max(a, b)


async def test_a_reset_request_takes_the_same_time_for_known_and_unknown_emails(
    cost12: Backend,
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{cost12.port}") as channel:
        stub = identity_pb2_grpc.IdentityServiceStub(channel)
        email = f"reset-timing-{uuid.uuid4().hex[:10]}@example.com"
        await stub.RegisterUser(
            identity_pb2.RegisterUserRequest(email=email, password=PASSWORD, display_name="T")
        )

        async def known() -> None:
            await stub.CreatePasswordReset(identity_pb2.CreatePasswordResetRequest(email=email))

        async def unknown() -> None:
            other = f"nobody-{uuid.uuid4().hex[:10]}@example.com"
            await stub.CreatePasswordReset(identity_pb2.CreatePasswordResetRequest(email=other))

        known_median, unknown_median = await _medians(known, unknown, samples=40)
    difference = _difference(known_median, unknown_median)
    print(
        f"\nreset request medians: known {known_median * 1000:.2f} ms, unknown "
        f"{unknown_median * 1000:.2f} ms, difference {difference:.1%}"
    )
    assert difference < 0.10, (known_median, unknown_median)


async def test_registering_a_taken_email_takes_the_same_time_as_a_new_one(
    cost12: Backend,
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{cost12.port}") as channel:
        stub = identity_pb2_grpc.IdentityServiceStub(channel)
        taken = f"taken-timing-{uuid.uuid4().hex[:10]}@example.com"
        await stub.RegisterUser(
            identity_pb2.RegisterUserRequest(email=taken, password=PASSWORD, display_name="T")
        )

        async def known() -> None:
            await stub.RegisterUser(
                identity_pb2.RegisterUserRequest(email=taken, password=PASSWORD, display_name="T")
            )

        async def unknown() -> None:
            fresh = f"fresh-{uuid.uuid4().hex[:10]}@example.com"
            await stub.RegisterUser(
                identity_pb2.RegisterUserRequest(email=fresh, password=PASSWORD, display_name="T")
            )

        taken_median, new_median = await _medians(known, unknown, samples=10)
    difference = _difference(taken_median, new_median)
    print(
        f"\nregistration medians at bcrypt cost {PRODUCTION_COST}: taken email "
        f"{taken_median * 1000:.1f} ms, new email {new_median * 1000:.1f} ms, "
        f"difference {difference:.1%}"
    )
    assert min(taken_median, new_median) > 0.05  # cost 12 really ran
    assert difference < 0.10, (taken_median, new_median)
