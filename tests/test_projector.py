"""The projector: commit order with out-of-order commits, leader failover, idempotent
replay, and rebuild equality."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import uuid
from typing import Any

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from learnflow.positions import ZERO, EventKey
from learnflow.projections.base import Batch
from learnflow.projections.projector import Projector, fetch_events, head, libpq_url
from learnflow.projections.registry import all_projections
from learnflow.projections.store import Deposed, ReadStore
from learnflow.server import READ_SIDE_HEALTH, Backend, build
from learnflow.settings import Settings
from tests.read_support import projector_stopped, settle, snapshot
from tests.support import Caller


def user_event(user_id: str) -> dict[str, Any]:
    return {
        "id": user_id,
        "email": f"{user_id}@example.com",
        "display_name": "Raw",
        "role": "student",
        "disabled": False,
        "created_at": "2026-01-01T00:00:00+00:00",
    }


async def insert_event(conn: psycopg.AsyncConnection[Any], user_id: str) -> str:
    """What a registration writes: the user row and its event, in the caller's transaction."""
    await conn.execute(
        "INSERT INTO users (id, email, display_name, role, password_hash)"
        " VALUES (%s, %s, 'Raw', 'student', '\\x00')",
        (user_id, f"{user_id}@example.com"),
    )
    cur = await conn.execute(
        "INSERT INTO events (event_type, aggregate_type, aggregate_id, payload)"
        " VALUES ('user.registered', 'user', %s, %s::jsonb) RETURNING txid::text, position",
        (user_id, json.dumps(user_event(user_id))),
    )
    row = await cur.fetchone()
    assert row is not None
    return f"{row[0]}.{row[1]}"


async def test_an_event_committed_after_a_later_one_is_still_projected(
    backend: Backend, postgres_url: str
) -> None:
    early_id, late_id = str(uuid.uuid4()), str(uuid.uuid4())
    url = libpq_url(postgres_url)
    async with (
        await psycopg.AsyncConnection.connect(url) as first,
        await psycopg.AsyncConnection.connect(url) as second,
    ):
        early = await insert_event(first, early_id)  # lower position, still uncommitted
        late = await insert_event(second, late_id)
        assert int(early.split(".")[1]) < int(late.split(".")[1])
        await second.commit()
        await second.execute("NOTIFY learnflow_events")
        await second.commit()
        # The projector must not move past the open transaction: the late event waits.
        await asyncio.sleep(1.0)
        db = await backend.store.active(max_age_s=0)
        assert await db["users"].find_one({"_id": late_id}) is None
        await first.commit()
    db = await backend.store.wait_for(late, 10)
    assert await db["users"].find_one({"_id": early_id}) is not None
    assert await db["users"].find_one({"_id": late_id}) is not None


async def test_commit_order_is_numeric_across_digit_boundaries(postgres_url: str) -> None:
    """Transaction ids of a young cluster cross 999 -> 1000 during a run: read as text they
    would sort "999" last (the test helper that waited for the read model once did, and
    returned before the projector had caught up). Reads a private temporary `events` table,
    which the session's search path finds before the real one."""
    txids = [8, 9, 10, 11, 99, 100, 101, 999, 1000, 1001]
    async with await psycopg.AsyncConnection.connect(
        libpq_url(postgres_url), autocommit=True
    ) as conn:
        await conn.execute("CREATE TEMP TABLE events (LIKE public.events INCLUDING DEFAULTS)")
        # Positions run against the transaction ids: the transaction id decides first.
        for offset, txid in enumerate(reversed(txids)):
            await conn.execute(
                "INSERT INTO events (txid, position, event_type, aggregate_type, aggregate_id,"
                " payload) VALUES (%s::text::xid8, %s, 'probe', 'probe', 'p', '{}')",
                (str(txid), offset + 1),
            )
        seen: list[EventKey] = []
        after = ZERO
        while page := await fetch_events(conn, after, 3):
            seen += [event.key for event in page]
            after = page[-1].key
        assert [key.txid for key in seen] == txids
        assert await head(conn) == EventKey(1001, 1)


async def test_a_standby_projector_takes_over_when_the_leader_dies(
    backend: Backend, settings: Settings, channel: Any
) -> None:
    async with projector_stopped(backend):
        stops = [asyncio.Event(), asyncio.Event()]
        projectors = [
            Projector(settings.postgres_url, backend.store, all_projections(), poll_s=0.1)
            for _ in stops
        ]
        tasks = [asyncio.create_task(p.run(s)) for p, s in zip(projectors, stops, strict=True)]
        try:
            for _ in range(100):
                if any(p.is_leader for p in projectors):
                    break
                await asyncio.sleep(0.05)
            leaders = [i for i, p in enumerate(projectors) if p.is_leader]
            assert len(leaders) == 1, "exactly one projector is active"
            leader = leaders[0]
            first = await Caller.register(channel)
            await backend.store.wait_for(first.consistency_token, 10)

            tasks[leader].cancel()  # the leader dies: its connection and lock go with it
            with contextlib.suppress(asyncio.CancelledError):
                await tasks[leader]
            second = await Caller.register(channel)
            db = await backend.store.wait_for(second.consistency_token, 10)
            assert await db["users"].find_one({"_id": second.user_id}) is not None
            assert projectors[1 - leader].is_leader
            assert projectors[1 - leader].applied > 0
        finally:
            for stop in stops:
                stop.set()
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def test_replaying_from_zero_changes_nothing(backend: Backend, postgres_url: str) -> None:
    token = await settle(postgres_url, backend.store)
    db = await backend.store.active(max_age_s=0)
    before = await snapshot(db)
    async with projector_stopped(backend):
        await ReadStore.save_checkpoint(db, ZERO)
    await backend.store.wait_for(token, 60)
    assert await snapshot(db) == before


async def test_rebuild_produces_the_same_documents_as_live_projection(
    backend: Backend, postgres_url: str, settings: Settings
) -> None:
    await settle(postgres_url, backend.store)
    live_generation = await backend.store.active_generation()
    live = await snapshot(backend.store.database(live_generation))
    async with projector_stopped(backend):  # nothing moves while we compare
        projector = Projector(settings.postgres_url, backend.store, all_projections())
        generation, applied, _ = await projector.rebuild()
        assert generation == live_generation + 1
        assert applied > 0
        assert await backend.store.active_generation() == generation
        rebuilt = await snapshot(backend.store.database(generation))
    assert rebuilt.keys() == live.keys()
    for name in live:
        assert rebuilt[name] == live[name], name


async def test_a_deposed_leader_cannot_overwrite_its_successors_documents(
    backend: Backend,
) -> None:
    """Leader 1 lost its lock mid-batch but still writes (its PostgreSQL session died, MongoDB
    answers). Whatever leader 2 wrote stays: the late writes are refused and stop leader 1."""
    client = backend.store.client
    db = client[f"lftest_fence_{uuid.uuid4().hex[:8]}"]
    try:
        first, second = await backend.store.next_epoch(), await backend.store.next_epoch()
        assert second > first
        await db["courses"].insert_one({"_id": "known", "title": "v1", "v": 1, "e": first})
        # Leader 1 read both documents (one not yet there) before leader 2 took over.
        updating, inserting = Batch(db, epoch=first), Batch(db, epoch=first)
        known = await updating.get("courses", "known")
        assert known is not None
        assert await inserting.get("courses", "fresh") is None

        successor = Batch(db, epoch=second)
        newer = await successor.get("courses", "known")
        assert newer is not None
        successor.put("courses", {**newer, "title": "v9", "v": 9})
        successor.put("courses", {"_id": "fresh", "title": "v9", "v": 9})
        await successor.flush()
        await ReadStore.save_checkpoint(db, EventKey(9, 9), second)

        # Leader 1's late writes, both of state older than what is stored, are refused.
        updating.put("courses", {**known, "title": "v5", "v": 5})
        with pytest.raises(Deposed):
            await updating.flush()
        inserting.put("courses", {"_id": "fresh", "title": "v5", "v": 5})
        with pytest.raises(Deposed):
            await inserting.flush()
        with pytest.raises(Deposed):
            await ReadStore.save_checkpoint(db, EventKey(5, 5), first)

        stored = {d["_id"]: (d["title"], d["e"]) async for d in db["courses"].find({})}
        assert stored == {"known": ("v9", second), "fresh": ("v9", second)}
        assert await ReadStore.checkpoint(db) == EventKey(9, 9)

        # A later leader (or the same one again) still writes over them.
        third = await backend.store.next_epoch()
        latest = Batch(db, epoch=third)
        doc = await latest.get("courses", "known")
        assert doc is not None
        latest.put("courses", {**doc, "title": "v10", "v": 10})
        await latest.flush()
        await ReadStore.save_checkpoint(db, EventKey(10, 10), third)
        assert (await db["courses"].find_one({"_id": "known"}) or {})["title"] == "v10"
    finally:
        await client.drop_database(db.name)


async def test_a_read_side_ahead_of_the_event_log_stops_the_projector(
    backend: Backend, settings: Settings, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Read models whose checkpoint names an event the log does not hold (what a PostgreSQL
    crash with synchronous_commit off leaves: the kill -9 fault test hit it) are not projected
    into, since events reusing the lost ids would sort before the checkpoint and be skipped;
    a rebuild makes read models the projector accepts again."""
    store = ReadStore.connect(settings.mongo_url, f"lftest_ahead_{uuid.uuid4().hex[:8]}")
    async with await psycopg.AsyncConnection.connect(libpq_url(postgres_url)) as conn:
        last = await head(conn) or ZERO
    lost = EventKey(last.txid + 1000, last.position + 1000)  # applied, then lost by the log
    await ReadStore.save_checkpoint(await store.active(max_age_s=0), lost)
    projector = Projector(settings.postgres_url, store, all_projections(), poll_s=0.1)
    stop = asyncio.Event()
    try:
        async with projector_stopped(backend):  # the session's projector holds the lock
            task = asyncio.create_task(projector.run(stop))
            for _ in range(100):
                if projector.ahead:
                    break
                await asyncio.sleep(0.05)
            assert lost.token() in projector.ahead
            assert "projections rebuild" in projector.ahead
            assert not projector.is_leader
            assert await ReadStore.checkpoint(await store.active(max_age_s=0)) == lost
            assert any(
                r.levelname == "ERROR" and "projector stopped" in r.getMessage()
                for r in caplog.records
            )
            stop.set()
            await asyncio.wait_for(task, 5)

            # `learnflow projections rebuild`: the new generation's checkpoint is a real event.
            await projector.rebuild()
            stop = asyncio.Event()
            task = asyncio.create_task(projector.run(stop))
            for _ in range(100):
                if projector.is_leader:
                    break
                await asyncio.sleep(0.05)
            assert projector.is_leader and not projector.ahead
            stop.set()
            await asyncio.wait_for(task, 5)
    finally:
        stop.set()
        for generation in range(1, await store.active_generation() + 2):
            await store.client.drop_database(store.database(generation).name)
        await store.client.drop_database(f"{store.name}_meta")
        await store.close()


async def test_health_reports_a_read_side_ahead_of_the_event_log(
    backend: Backend, settings: Settings, postgres_url: str
) -> None:
    """A server whose projector refuses such read models says so on `learnflow.ReadModels`."""
    name = f"lftest_ahead_{uuid.uuid4().hex[:8]}"
    store = ReadStore.connect(settings.mongo_url, name)
    async with await psycopg.AsyncConnection.connect(libpq_url(postgres_url)) as conn:
        last = await head(conn) or ZERO
    await ReadStore.save_checkpoint(
        await store.active(max_age_s=0), EventKey(last.txid + 1000, last.position + 1000)
    )
    try:
        async with projector_stopped(backend):
            ahead = await build(dataclasses.replace(settings, mongo_database=name))
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{ahead.port}") as channel:
                    health = health_pb2_grpc.HealthStub(channel)
                    request = health_pb2.HealthCheckRequest(service=READ_SIDE_HEALTH)
                    status = None
                    for _ in range(100):  # the watcher's rounds are 2 s apart
                        # NOT_FOUND until the watcher's first round names the service.
                        with contextlib.suppress(grpc.aio.AioRpcError):
                            status = (await health.Check(request, timeout=2)).status
                        if status == health_pb2.HealthCheckResponse.NOT_SERVING:
                            break
                        await asyncio.sleep(0.1)
                    assert status == health_pb2.HealthCheckResponse.NOT_SERVING
                    assert ahead.projector.ahead and not ahead.projector.is_leader
            finally:
                await ahead.close(grace_s=1)
    finally:
        await store.client.drop_database(store.database(1).name)
        await store.client.drop_database(f"{name}_meta")
        await store.close()
