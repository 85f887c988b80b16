"""Login takes the same time whether the account exists or not, at production bcrypt cost.

A server of its own with `bcrypt_rounds=12` (the suite's shared one hashes at cost 4 for
speed) on the same database. Each sample is one CreateSession call over gRPC, the two kinds
interleaved (ABBA) so that drift in the machine's load falls on both; medians compared.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from sqlalchemy import text

from learnflow.server import Backend, build
from learnflow.settings import Settings
from learnflow.v1 import identity_pb2, identity_pb2_grpc
from tests.support import PASSWORD

SAMPLES = 15  # of each kind
PRODUCTION_COST = 12


@pytest.fixture(scope="module")
async def cost12(settings: Settings) -> AsyncIterator[Backend]:
    backend = await build(
        dataclasses.replace(settings, bcrypt_rounds=PRODUCTION_COST), run_projector=False
    )
    yield backend
    await backend.close(grace_s=1)


async def timed_failure(
    stub: identity_pb2_grpc.IdentityServiceAsyncStub, email: str, password: str
) -> float:
    started = time.perf_counter()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CreateSession(identity_pb2.CreateSessionRequest(email=email, password=password))
    elapsed = time.perf_counter() - started
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert err.value.details() == "invalid email or password"
    return elapsed


async def test_wrong_password_and_unknown_email_take_the_same_time(cost12: Backend) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{cost12.port}") as channel:
        stub = identity_pb2_grpc.IdentityServiceStub(channel)
        email = f"timing-{uuid.uuid4().hex[:10]}@example.com"
        await stub.RegisterUser(
            identity_pb2.RegisterUserRequest(email=email, password=PASSWORD, display_name="T")
        )
        stored = await cost12.db.engine.connect()
        try:
            hashed = (
                await stored.execute(
                    text("SELECT password_hash FROM users WHERE email = :e"), {"e": email}
                )
            ).scalar_one()
        finally:
            await stored.close()
        assert bytes(hashed).startswith(b"$2b$12$")  # really the production cost

        async def wrong_password() -> float:
            return await timed_failure(stub, email, "not-the-password")

        async def unknown_email() -> float:
            unknown = f"nobody-{uuid.uuid4().hex[:10]}@example.com"
            return await timed_failure(stub, unknown, "not-the-password")

        await wrong_password()  # warm up both paths (connections, thread pool)
        await unknown_email()
        wrong: list[float] = []
        unknown: list[float] = []
        for i in range(SAMPLES):
            first, second = (wrong_password, unknown_email)[:: 1 if i % 2 == 0 else -1]
            for measure in (first, second):
                (wrong if measure is wrong_password else unknown).append(await measure())

    wrong_median, unknown_median = statistics.median(wrong), statistics.median(unknown)
    difference = abs(wrong_median - unknown_median) / max(wrong_median, unknown_median)
    print(
        f"\nlogin medians at bcrypt cost {PRODUCTION_COST}: wrong password "
        f"{wrong_median * 1000:.1f} ms, unknown email {unknown_median * 1000:.1f} ms, "
        f"difference {difference:.1%}"
    )
    # Cost 12 really ran: a verification takes tens of milliseconds at the very least.
    assert min(wrong_median, unknown_median) > 0.05
    assert difference < 0.10, (wrong, unknown)
