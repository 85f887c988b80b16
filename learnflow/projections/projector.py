"""The projector: tails the outbox in commit order and applies events to the read models.

- Commit order, no skips: it reads only events whose transaction id is below
  `pg_snapshot_xmin(pg_current_snapshot())`, i.e. of transactions older than every open one,
  whose rows are therefore final, in `(txid, position)` order after its checkpoint. An event
  whose transaction commits late is read when it is final, never passed over.
- One active projector across processes: it holds a PostgreSQL advisory lock on a dedicated
  connection; others wait on the lock and take over when the holder's connection dies.
- Wakes on LISTEN/NOTIFY (sent by every command that appends events), polls as a fallback.
- One event that cannot be applied never stops the others. When a batch fails for any reason
  but an unreachable store, its events are applied again one at a time; an event that still
  fails after `PARK_AFTER_ATTEMPTS` is *parked* (a record in `parked_events`: its key, type,
  aggregate, error, attempts, time; an ERROR log line names it) and the checkpoint moves past
  it. `learnflow projections status` lists parked events, health reports them, and
  `learnflow projections retry` applies them again once the cause is fixed.
- Never ahead of the event log: on taking the lock it checks that the event its checkpoint
  names is in the outbox (events are never deleted). If not, PostgreSQL lost transactions the
  read models already applied (a crash with `synchronous_commit` off, a restore from backup, a
  failover to a lagging replica) or the read store belongs to another database; the lost ids
  are handed out again and projecting on would skip new events for good. It stops and says so
  until `learnflow projections rebuild` replaces the read models.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

import psycopg
from opentelemetry import context as otel_context
from opentelemetry.trace import Link, SpanKind
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure

from learnflow import tracing
from learnflow.positions import ZERO, EventKey
from learnflow.projections.base import Batch, DocumentCache, Event, Projection
from learnflow.projections.store import Deposed, Document, ReadStore
from learnflow.storage.unit_of_work import EVENTS_CHANNEL

log = logging.getLogger("learnflow.projector")

ADVISORY_LOCK_KEY = 0x1EA2F10  # "learnflow projector"
MAX_BATCH = 2000
YIELD_EVERY = 50
PARK_AFTER_ATTEMPTS = 3
PARKED = "parked_events"
MAX_ERROR_TEXT = 500
REBUILD_FETCH = 5000
REBUILD_FLUSH_DOCS = 100_000
MAX_LINKS = 128

# ORDER BY names the table's columns explicitly: a bare `txid` would mean the output column
# (`txid::text::bigint`), which sorts right but cannot use the (txid, position) index, and an
# output column read as text would sort "999" after "1000".
FETCH_SQL = """
SELECT txid::text::bigint, position, event_type, aggregate_type, aggregate_id,
       schema_version, payload, occurred_at, trace_parent
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
    return [_event(r) for r in await cur.fetchall()]


def _event(r: Any) -> Event:
    return Event(EventKey(int(r[0]), int(r[1])), r[2], r[3], r[4], r[5], r[6], r[7], r[8])


EVENT_SQL = """
SELECT txid::text::bigint, position, event_type, aggregate_type, aggregate_id,
       schema_version, payload, occurred_at, trace_parent
FROM events WHERE txid = %(txid)s::text::xid8 AND position = %(position)s
"""


async def fetch_event(conn: psycopg.AsyncConnection[Any], key: EventKey) -> Event | None:
    cur = await conn.execute(EVENT_SQL, {"txid": str(key.txid), "position": key.position})
    r = await cur.fetchone()
    return _event(r) if r else None


def _unreachable(exc: BaseException) -> bool:
    """A failure of the way to a database, not of the event: retry, never park."""
    return isinstance(exc, ConnectionFailure | psycopg.OperationalError | OSError | Deposed)


class ReadSideAhead(Exception):
    """The active read models applied an event the event log does not hold (see above)."""


# How long a projector that found the read side ahead waits before it checks again: nothing
# changes that until a rebuild, and each check logs an ERROR.
AHEAD_RECHECK_S = 10.0


def parked_record(event: Event, error: BaseException, attempts: int) -> Document:
    """The dead-letter record of an event the projector gave up on (for now)."""
    text = f"{type(error).__name__}: {error}"
    return {
        "_id": event.key.token(),
        "txid": event.key.txid,
        "position": event.key.position,
        "event_type": event.event_type,
        "aggregate_type": event.aggregate_type,
        "aggregate_id": event.aggregate_id,
        "error": text[:MAX_ERROR_TEXT],
        "attempts": attempts,
        "parked_at": time.time(),
    }


async def head(conn: psycopg.AsyncConnection[Any]) -> EventKey | None:
    """The commit-order key of the last event written (committed or not yet final), if any:
    a read model whose checkpoint reaches it has applied everything."""
    cur = await conn.execute(HEAD_SQL)
    row = await cur.fetchone()
    return EventKey(int(row[0]), int(row[1])) if row else None


def _links(events: list[Event]) -> list[Link]:
    """Links to the spans that wrote `events`, one per distinct writer, at most
    `MAX_LINKS` (the SDK's default span limit would drop the rest anyway)."""
    links: list[Link] = []
    seen: set[str] = set()
    for event in events:
        if event.trace_parent and event.trace_parent not in seen:
            seen.add(event.trace_parent)
            link = tracing.link_to(event.trace_parent)
            if link is not None:
                links.append(link)
                if len(links) >= MAX_LINKS:
                    break
    return links


class Projector:
    def __init__(
        self,
        postgres_url: str,
        store: ReadStore,
        projections: Sequence[Projection],
        poll_s: float = 1.0,
        batch_size: int = 500,
        cache_docs: int = 50_000,
    ) -> None:
        self.postgres_url = libpq_url(postgres_url)
        self.store = store
        self.projections = list(projections)
        self.poll_s = poll_s
        self.batch_size = batch_size
        self.is_leader = False
        self.epoch: int | None = None  # while leader (see `ReadStore.next_epoch`)
        self.applied = 0
        self.ahead = ""  # why it refuses to project (ReadSideAhead), empty while it does not
        self.cache = DocumentCache(cache_docs)

    async def apply_batch(
        self, db: AsyncDatabase[Document], events: list[Event], batch: Batch | None = None
    ) -> None:
        """Apply `events` to `db`, write the documents they touched, then the checkpoint.

        If that fails for another reason than an unreachable store, the events are applied
        one at a time and those that keep failing are parked (see the module docstring)."""
        if not events:
            return
        tracer = tracing.tracer()
        if tracer is None:
            await self._apply_batch(db, events, batch)
            return
        with tracer.start_as_current_span(
            "project events",
            # A root of its own, whatever runs around it; linked to the writers' spans.
            context=otel_context.Context(),
            kind=SpanKind.CONSUMER,
            links=_links(events),
            attributes={
                "messaging.batch.message_count": len(events),
                "learnflow.projector.first_event": events[0].key.token(),
                "learnflow.projector.last_event": events[-1].key.token(),
                "learnflow.projector.read_models": db.name,
            },
        ):
            await self._apply_batch(db, events, batch)

    async def _apply_batch(
        self, db: AsyncDatabase[Document], events: list[Event], batch: Batch | None
    ) -> None:
        try:
            await self._apply(db, events, batch or Batch(db, epoch=self.epoch, cache=self.cache))
        except Exception as exc:
            # What the cache holds may now differ from the store (a flush can fail halfway).
            self.cache.clear()
            if _unreachable(exc) or (batch is not None and batch.persistent):
                raise
            log.warning(
                "projecting a batch of %d events failed (%s); applying them one by one",
                len(events),
                type(exc).__name__,
            )
            for event in events:
                await self._apply_or_park(db, event)

    async def _apply(self, db: AsyncDatabase[Document], events: list[Event], batch: Batch) -> None:
        for i, event in enumerate(events, start=1):
            for projection in self.projections:
                await projection.apply(batch, event)
            if i % YIELD_EVERY == 0:
                # Handlers served from the document cache never wait, so a large batch would
                # otherwise hold the event loop (and every RPC of this process) for its whole
                # length: let other tasks run between slices.
                await asyncio.sleep(0)
        await batch.flush()
        await self.store.save_checkpoint(db, events[-1].key, batch.epoch)
        self.applied += len(events)
        self.store.notify_changed(db.name, events[-1].key, batch.written)
        batch.written.clear()

    async def _apply_or_park(self, db: AsyncDatabase[Document], event: Event) -> None:
        error: Exception | None = None
        for attempt in range(1, PARK_AFTER_ATTEMPTS + 1):
            try:
                await self._apply(db, [event], Batch(db, epoch=self.epoch, cache=self.cache))
                return
            except Exception as exc:
                self.cache.clear()
                if _unreachable(exc):
                    raise
                error = exc
                await asyncio.sleep(0.05 * attempt)
        assert error is not None
        await self.park(db, event, error, PARK_AFTER_ATTEMPTS)
        await self.store.save_checkpoint(db, event.key, self.epoch)
        self.store.notify_changed(db.name, event.key)

    async def park(
        self, db: AsyncDatabase[Document], event: Event, error: BaseException, attempts: int
    ) -> None:
        record = parked_record(event, error, attempts)
        await db[PARKED].replace_one({"_id": record["_id"]}, record, upsert=True)
        log.error(
            "parked event %s (%s of %s %s) after %d failed attempts: %s",
            record["_id"],
            event.event_type,
            event.aggregate_type,
            event.aggregate_id,
            attempts,
            record["error"],
            extra={"event": record["_id"], "event_type": event.event_type},
        )

    async def retry_parked(self) -> tuple[int, int]:
        """Applies every parked event of the active read models again, oldest first; an event
        that now applies leaves the list. Returns (applied, still parked)."""
        db = await self.store.active(max_age_s=0)
        parked = await db[PARKED].find({}).to_list()
        parked.sort(key=lambda doc: (int(doc["txid"]), int(doc["position"])))
        applied = 0
        async with await psycopg.AsyncConnection.connect(
            self.postgres_url, autocommit=True
        ) as conn:
            for record in parked:
                event = await fetch_event(conn, EventKey(record["txid"], record["position"]))
                if event is None:
                    continue
                batch = Batch(db)
                try:
                    for projection in self.projections:
                        await projection.apply(batch, event)
                    await batch.flush()
                except Exception as exc:
                    if _unreachable(exc):
                        raise
                    await self.park(db, event, exc, int(record.get("attempts", 0)) + 1)
                    continue
                await db[PARKED].delete_one({"_id": record["_id"]})
                # Readers' caches in this process drop what the retry rewrote.
                self.store.notify_changed(db.name, ZERO, batch.written)
                applied += 1
        return applied, len(parked) - applied

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
            # A backlog: larger batches, since a batch costs about its distinct documents
            # (each read and written once) rather than its events.
            size = min(size * 2, MAX_BATCH)
            await asyncio.sleep(0)  # between batches too

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
            except ReadSideAhead as exc:
                self.is_leader = False
                self.ahead = str(exc)
                log.error("projector stopped: %s", exc)
                await _pause(stop, AHEAD_RECHECK_S)
                continue
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
            await self._check_not_ahead(conn)
            self.ahead = ""
            self.epoch = await self.store.next_epoch()
            self.cache.clear()  # a new epoch starts from what the store holds
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

    async def _check_not_ahead(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """ReadSideAhead unless the event the active read models' checkpoint names exists."""
        checkpoint = await self.store.checkpoint(await self.store.active(max_age_s=0))
        if checkpoint != ZERO and await fetch_event(conn, checkpoint) is None:
            raise ReadSideAhead(
                f"the read models' checkpoint {checkpoint.token()} is not in the event log:"
                " PostgreSQL lost transactions they had applied (a crash with synchronous_commit"
                " off, a restore from backup, a failover to a lagging replica) or the read store"
                " belongs to another database; run `learnflow projections rebuild`"
            )

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
                for i, event in enumerate(events, start=1):
                    try:
                        for projection in self.projections:
                            await projection.apply(batch, event)
                    except Exception as exc:
                        # Parked in the new generation: it goes live with its parked list.
                        await self.park(db, event, exc, 1)
                    if i % YIELD_EVERY == 0:
                        await asyncio.sleep(0)  # in memory: let the process's other work run
                applied += len(events)
                if events:
                    after = events[-1].key
                if batch.pending >= REBUILD_FLUSH_DOCS or len(events) < REBUILD_FETCH:
                    await batch.flush()
                    batch.written.clear()  # nobody reads this generation yet
                    await self.store.save_checkpoint(db, after)
                if len(events) < REBUILD_FETCH:
                    break
            # Events committed meanwhile: the normal path, from the checkpoint just saved.
            applied += await self.catch_up(conn, db, batch)
        await self.store.activate(target)
        if current > 1:
            await self.store.client.drop_database(self.store.database(current - 1).name)
        return target, applied, time.perf_counter() - started
