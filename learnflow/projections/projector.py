"""The projector: tails the outbox in commit order and applies events to the read models.

- Commit order, no skips: it reads only events whose transaction id is below
  `pg_snapshot_xmin(pg_current_snapshot())`, i.e. of transactions older than every open one,
  whose rows are therefore final, in `(txid, position)` order after its checkpoint. An event
  whose transaction commits late is read when it is final, never passed over.
- One active projector across processes: it holds a PostgreSQL advisory lock on a dedicated
  connection; others wait on the lock and take over when the holder's connection dies.
- Wakes on LISTEN/NOTIFY (sent by every command that appends events), polls as a fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

import psycopg
from pymongo.asynchronous.database import AsyncDatabase

from learnflow.commands.unit_of_work import EVENTS_CHANNEL
from learnflow.projections.base import Batch, Event, Projection
from learnflow.projections.store import Deposed, Document, EventKey, ReadStore

log = logging.getLogger("learnflow.projector")

ADVISORY_LOCK_KEY = 0x1EA2F10  # "learnflow projector"
REBUILD_FETCH = 5000
REBUILD_FLUSH_DOCS = 100_000

# ORDER BY names the table's columns explicitly: a bare `txid` would mean the output column
# (`txid::text::bigint`), which sorts right but cannot use the (txid, position) index, and an
# output column read as text would sort "999" after "1000".
FETCH_SQL = """
SELECT txid::text::bigint, position, event_type, aggregate_type, aggregate_id,
       schema_version, payload, occurred_at
FROM events
WHERE (txid, position) > (%(txid)s::text::xid8, %(position)s)
  AND txid < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY events.txid, events.position
LIMIT %(limit)s
"""

HEAD_SQL = """
SELECT txid::text::bigint, position FROM events
ORDER BY events.txid DESC, events.position DESC
LIMIT 1
"""


def _raise_if_cancelling() -> None:
    # A cancellation can reach `run` disguised (closing the connection on the way out failed
    # and replaced it) or be lost (3.11's `wait_for` race); the task still counts it.
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds` or until `stop` is set."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()


def libpq_url(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)


async def fetch_events(
    conn: psycopg.AsyncConnection[Any], after: EventKey, limit: int
) -> list[Event]:
    cur = await conn.execute(
        FETCH_SQL, {"txid": str(after.txid), "position": after.position, "limit": limit}
    )
    return [
        Event(EventKey(int(r[0]), int(r[1])), r[2], r[3], r[4], r[5], r[6], r[7])
        for r in await cur.fetchall()
    ]


async def head(conn: psycopg.AsyncConnection[Any]) -> EventKey | None:
    """The commit-order key of the last event written (committed or not yet final), if any:
    a read model whose checkpoint reaches it has applied everything."""
    cur = await conn.execute(HEAD_SQL)
    row = await cur.fetchone()
    return EventKey(int(row[0]), int(row[1])) if row else None


class Projector:
    def __init__(
        self,
        postgres_url: str,
        store: ReadStore,
        projections: Sequence[Projection],
        poll_s: float = 1.0,
        batch_size: int = 500,
    ) -> None:
        self.postgres_url = libpq_url(postgres_url)
        self.store = store
        self.projections = list(projections)
        self.poll_s = poll_s
        self.batch_size = batch_size
        self.is_leader = False
        self.epoch: int | None = None  # while leader (see `ReadStore.next_epoch`)
        self.applied = 0

    async def apply_batch(
        self, db: AsyncDatabase[Document], events: list[Event], batch: Batch | None = None
    ) -> None:
        """Apply `events` to `db`, write the documents they touched, then the checkpoint."""
        if not events:
            return
        batch = batch or Batch(db, epoch=self.epoch)
        for event in events:
            for projection in self.projections:
                await projection.apply(batch, event)
        await batch.flush()
        await self.store.save_checkpoint(db, events[-1].key, batch.epoch)
        self.applied += len(events)
        self.store.notify_changed()

    async def ensure_indexes(self, db: AsyncDatabase[Document]) -> None:
        for projection in self.projections:
            await projection.ensure_indexes(db)

    async def catch_up(
        self,
        conn: psycopg.AsyncConnection[Any],
        db: AsyncDatabase[Document],
        batch: Batch | None = None,
        batch_size: int | None = None,
    ) -> int:
        """Apply every final event after the checkpoint of `db`; returns how many.

        `batch` (a persistent one, for rebuilds) is reused across rounds; by default each
        round reads its documents afresh."""
        size = batch_size or self.batch_size
        total = 0
        while True:
            after = await self.store.checkpoint(db)
            events = await fetch_events(conn, after, size)
            await self.apply_batch(db, events, batch)
            total += len(events)
            if len(events) < size:
                return total

    async def run(self, stop: asyncio.Event) -> None:
        """Stand by for the advisory lock, then project until `stop` is set."""
        while not stop.is_set():
            try:
                await self._run_once(stop)
            except (psycopg.OperationalError, OSError) as exc:
                self.is_leader = False
                _raise_if_cancelling()
                log.warning("projector lost its database connection: %s; retrying", exc)
            except Deposed as exc:
                self.is_leader = False
                _raise_if_cancelling()
                log.warning("%s; standing by", exc)
            except Exception:
                _raise_if_cancelling()
                # Anything else (a read-model write refused or timed out, a bad event) must not
                # end the task for good: the outbox keeps every event, so start over from the
                # checkpoint after a pause. Giving up the connection gives up the lock, so a
                # standby may take over meanwhile.
                self.is_leader = False
                log.exception("projector failed; restarting from its checkpoint")
            else:
                continue
            await _pause(stop, 1.0)

    async def _run_once(self, stop: asyncio.Event) -> None:
        async with await psycopg.AsyncConnection.connect(
            self.postgres_url, autocommit=True
        ) as conn:
            while not stop.is_set():
                cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
                row = await cur.fetchone()
                if row and row[0]:
                    break
                await _pause(stop, self.poll_s)
            if stop.is_set():
                return
            self.epoch = await self.store.next_epoch()
            self.is_leader = True
            log.info("projector is active", extra={"epoch": self.epoch})
            await conn.execute(f"LISTEN {EVENTS_CHANNEL}")
            db = await self.store.active(max_age_s=0)
            await self.ensure_indexes(db)
            while not stop.is_set():
                # Re-read the active generation each round: a rebuild may have switched it.
                db = await self.store.active(max_age_s=0)
                started = time.perf_counter()
                applied = await self.catch_up(conn, db)
                if applied:
                    log.info(
                        "projected events",
                        extra={
                            "events": applied,
                            "ms": round((time.perf_counter() - started) * 1000, 1),
                            "lag_s": round(await self.lag_seconds(conn, db), 3),
                        },
                    )
                await self._wait_for_notify(conn, stop)

    async def _wait_for_notify(
        self, conn: psycopg.AsyncConnection[Any], stop: asyncio.Event
    ) -> None:
        # notifies() returns after the first notification or at the timeout (polling fallback).
        async for _ in conn.notifies(timeout=self.poll_s, stop_after=1):
            break

    async def lag_seconds(
        self, conn: psycopg.AsyncConnection[Any], db: AsyncDatabase[Document]
    ) -> float:
        """Age of the oldest event not yet applied, 0 when caught up (the lag metric)."""
        after = await self.store.checkpoint(db)
        cur = await conn.execute(
            "SELECT extract(epoch FROM now() - min(occurred_at)) FROM events"
            " WHERE (txid, position) > (%s::text::xid8, %s)",
            (str(after.txid), after.position),
        )
        row = await cur.fetchone()
        return float(row[0]) if row and row[0] is not None else 0.0

    async def rebuild(self) -> tuple[int, int, float]:
        """Replay every event into a fresh generation, switch to it when caught up.

        Returns (new generation, events applied, seconds). The active projector keeps
        serving the old generation meanwhile and moves to the new one at its next round;
        anything it applied to the old one after our last batch is re-applied from the new
        generation's own checkpoint, so nothing is lost.
        """
        started = time.perf_counter()
        current = await self.store.active_generation()
        target = current + 1
        await self.store.client.drop_database(self.store.database(target).name)
        db = self.store.database(target)
        await self.ensure_indexes(db)
        async with await psycopg.AsyncConnection.connect(
            self.postgres_url, autocommit=True
        ) as conn:
            # Nobody reads the new generation yet: keep the documents in memory and write
            # them wholesale (see Batch) only every `REBUILD_FLUSH_DOCS` changed documents
            # and at the end, each time with its checkpoint.
            batch = Batch(db, persistent=True)
            applied = 0
            after = await self.store.checkpoint(db)
            while True:
                events = await fetch_events(conn, after, REBUILD_FETCH)
                for event in events:
                    for projection in self.projections:
                        await projection.apply(batch, event)
                applied += len(events)
                if events:
                    after = events[-1].key
                if batch.pending >= REBUILD_FLUSH_DOCS or len(events) < REBUILD_FETCH:
                    await batch.flush()
                    await self.store.save_checkpoint(db, after)
                if len(events) < REBUILD_FETCH:
                    break
            # Events committed meanwhile: the normal path, from the checkpoint just saved.
            applied += await self.catch_up(conn, db, batch)
        await self.store.activate(target)
        if current > 1:
            await self.store.client.drop_database(self.store.database(current - 1).name)
        return target, applied, time.perf_counter() - started
