"""One event the projector cannot apply never stops the read side: it is parked, reported
(status, health), retried after a fix, and a rebuild after the fix gives the same documents.

A second server shares the session's PostgreSQL but reads its own MongoDB database, fed by a
projector this test drives, whose projections include a saboteur: it fails every event that
carries a chosen course title, the way a bug or a store refusal would."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pymongo import AsyncMongoClient

from learnflow.events import COURSE_EVENTS
from learnflow.positions import EventKey
from learnflow.projections.base import Batch, Event, Projection, on
from learnflow.projections.maintenance import status
from learnflow.projections.projector import PARKED, Projector, libpq_url
from learnflow.projections.registry import all_projections
from learnflow.server import PARKED_EVENTS_TRAILER, READ_SIDE_HEALTH, Backend, build
from learnflow.settings import Settings
from learnflow.v1 import courses_pb2
from tests.commands_support import courses, new_course
from tests.gateway_support import running_gateway
from tests.read_support import catalog, strip_ids
from tests.support import Caller

POISON = "Poisoned course title"


class Saboteur(Projection):
    """Fails every course event titled `POISON` while `armed`."""

    name = "saboteur"
    armed = True

    @on(*COURSE_EVENTS)
    async def course_changed(self, batch: Batch, event: Event) -> None:
        if self.armed and event.payload.get("title") == POISON:
            raise RuntimeError("the saboteur refuses this course")


@dataclasses.dataclass
class Side:
    backend: Backend
    projector: Projector
    saboteur: Saboteur


@pytest.fixture
async def side(settings: Settings) -> AsyncIterator[Side]:
    own = dataclasses.replace(settings, mongo_database=f"lfpark_{uuid.uuid4().hex[:8]}")
    backend = await build(own, run_projector=False)
    saboteur = Saboteur()
    projector = Projector(own.postgres_url, backend.store, [*all_projections(), saboteur])
    stop = asyncio.Event()

    # The session's history first (it may be long when other tests ran before), so that the
    # bounds asserted below concern new writes only.
    async with await psycopg.AsyncConnection.connect(
        libpq_url(own.postgres_url), autocommit=True
    ) as conn:
        db = await backend.store.active(max_age_s=0)
        await projector.ensure_indexes(db)
        await projector.catch_up(conn, db)

    async def drive() -> None:
        # The leader loop without the advisory lock (the session's own projector holds it):
        # catch up, then again every 50 ms.
        async with await psycopg.AsyncConnection.connect(
            libpq_url(own.postgres_url), autocommit=True
        ) as conn:
            while not stop.is_set():
                await projector.catch_up(conn, await backend.store.active(max_age_s=0))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.05)

    task = asyncio.create_task(drive())
    try:
        yield Side(backend, projector, saboteur)
    finally:
        stop.set()
        await task
        await backend.close(grace_s=1)
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(own.mongo_url)
        for generation in range(1, 4):
            await client.drop_database(f"{own.mongo_database}_g{generation}")
        await client.drop_database(f"{own.mongo_database}_meta")
        await client.close()


async def _read_side_health(channel: grpc.aio.Channel) -> tuple[int, str]:
    call = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=READ_SIDE_HEALTH)
    )
    reply = await call
    trailers: Any = await call.trailing_metadata()
    return reply.status, dict(trailers or ()).get(PARKED_EVENTS_TRAILER, "")


async def test_a_poisoned_event_is_parked_and_every_other_read_keeps_its_bound(
    side: Side, postgres_url: str, settings: Settings
) -> None:
    port = side.backend.port
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        teacher = await Caller.with_role(channel, postgres_url, "instructor", name="Teacher")
        poisoned = await new_course(teacher, title=POISON)
        # Every later write reads back within its bound, with its consistency token.
        for i in range(5):
            reply = await courses(channel).CreateCourse(
                courses_pb2.CreateCourseRequest(course=courses_pb2.Course(title=f"Healthy {i}")),
                metadata=teacher.metadata(),
            )
            started = time.perf_counter()
            got = await catalog(channel).GetCourse(
                courses_pb2.GetCourseRequest(course_id=reply.course.id),
                metadata=teacher.metadata(reply.consistency_token),
            )
            assert got.course.title == f"Healthy {i}"
            assert time.perf_counter() - started < 2.0

        # The poisoned course is missing from the read models, and said to be.
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await catalog(channel).GetCourse(
                courses_pb2.GetCourseRequest(course_id=poisoned.id), metadata=teacher.metadata()
            )
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        own = dataclasses.replace(settings, mongo_database=side.backend.settings.mongo_database)
        state = await status(own)
        parked = [p for p in state.parked if p["aggregate_id"] == poisoned.id]
        assert [p["event_type"] for p in parked] == ["course.created"]
        assert "saboteur refuses" in parked[0]["error"]
        assert parked[0]["attempts"] == 3
        assert EventKey(parked[0]["txid"], parked[0]["position"]) <= state.checkpoint

        # Health: the server stays SERVING, the read side says it is degraded, with the count.
        deadline = time.monotonic() + 5
        while True:
            health, count = await _read_side_health(channel)
            if health == health_pb2.HealthCheckResponse.NOT_SERVING or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert health == health_pb2.HealthCheckResponse.NOT_SERVING
        assert count == "1"
        async with (
            running_gateway(f"127.0.0.1:{port}", ready_services=[READ_SIDE_HEALTH]) as gateway,
            httpx.AsyncClient(base_url=gateway.url) as http,
        ):
            ready = await http.get("/readyz")
        assert ready.status_code == 200  # still serving: degraded, not down
        assert ready.json() == {
            "status": "DEGRADED",
            "services": {
                READ_SIDE_HEALTH: {
                    "status": "NOT_SERVING",
                    "details": {PARKED_EVENTS_TRAILER: "1"},
                }
            },
        }

        # After the fix, retry applies it and it leaves the list.
        side.saboteur.armed = False
        applied, left = await side.projector.retry_parked()
        assert (applied, left) == (1, 0)
        got = await catalog(channel).GetCourse(
            courses_pb2.GetCourseRequest(course_id=poisoned.id), metadata=teacher.metadata()
        )
        assert got.course.title == POISON

        # ... and the documents are those a rebuild (of the fixed code) gives.
        live = await side.backend.store.active(max_age_s=0)
        assert await live[PARKED].count_documents({}) == 0
        live_course = await live["courses"].find_one({"_id": poisoned.id})
        await side.projector.rebuild()
        rebuilt = await side.backend.store.active(max_age_s=0)
        rebuilt_course = await rebuilt["courses"].find_one({"_id": poisoned.id})
        assert live_course is not None and rebuilt_course is not None
        assert strip_ids([_without_epoch(live_course)]) == strip_ids(
            [_without_epoch(rebuilt_course)]
        )


def _without_epoch(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "e"}
