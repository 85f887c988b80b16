"""Read-your-writes waits, driven by the projector's progress: one watcher per process.

A query that carries a consistency token must not answer before the read models include that
event. Rather than every such request polling the store, the process keeps one
`CheckpointWatcher`: it knows the checkpoint of the active read models, learns of progress from
this process's projector at once (`ReadStore.notify_changed`) or, when another process leads,
from one poll of the checkpoint per `poll_s` while anyone waits, and wakes all waiters whose
event is in. Waiting costs no CPU and no store round trip per request.

Bad tokens cost nothing: a malformed one is INVALID_ARGUMENT at once (`EventKey.parse`); one
beyond the event log's head (which no command ever returned) is INVALID_ARGUMENT after one
look at the head, shared by every request that needs it at that moment. The number of waiters
is bounded per client and in total (RESOURCE_EXHAUSTED with RetryInfo beyond), so parking
requests cannot pile up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from learnflow import metrics
from learnflow.errors import FieldViolation, InvalidArgument, ResourceExhausted, Unavailable
from learnflow.positions import CONSISTENCY_HEADER, ZERO, EventKey
from learnflow.projections.store import Document, ReadStore

HeadProbe = Callable[[], Coroutine[Any, Any, EventKey]]

log = logging.getLogger("learnflow.read_models")


class CheckpointWatcher:
    def __init__(
        self,
        store: ReadStore,
        head_probe: HeadProbe,
        *,
        poll_s: float = 0.02,
        max_waiters_per_client: int = 16,
        max_waiters: int = 1000,
    ) -> None:
        self.store = store
        self.head_probe = head_probe
        self.poll_s = poll_s
        self.max_waiters_per_client = max_waiters_per_client
        self.max_waiters = max_waiters
        self._known: dict[str, EventKey] = {}  # checkpoint by read-model database name
        self._head = ZERO
        self._head_probe: asyncio.Task[EventKey] | None = None
        self._waiters: Counter[str] = Counter()
        self._progress = asyncio.Condition()
        self._poller: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        return sum(self._waiters.values())

    async def wait_for(self, token: str, client: str, timeout_s: float) -> AsyncDatabase[Document]:
        """The active read models once they include `token`'s event."""
        started = time.monotonic()
        outcome = "error"  # the store failed, or the caller went away
        try:
            db = await self._wait_for(token, client, timeout_s)
            outcome = "served"
            return db
        except Unavailable:
            outcome = "timeout"
            raise
        except ResourceExhausted:
            outcome = "refused"
            raise
        except InvalidArgument:
            outcome = "invalid"
            raise
        finally:
            metrics.CONSISTENCY_WAITS.labels(outcome=outcome).inc()
            if outcome in ("served", "timeout"):
                metrics.CONSISTENCY_WAIT_SECONDS.observe(time.monotonic() - started)

    async def _wait_for(self, token: str, client: str, timeout_s: float) -> AsyncDatabase[Document]:
        wanted = EventKey.parse(token)
        db = await self.store.active(max_age_s=0.5)
        if wanted <= self._checkpoint(db.name):
            return db
        if wanted > self._head:
            self._head = max(self._head, await self._probe_head())
            if wanted > self._head:
                raise InvalidArgument(
                    [
                        FieldViolation(
                            CONSISTENCY_HEADER, "names no event yet written: not from a command"
                        )
                    ]
                )
        self._admit(client)
        try:
            return await self._wait(wanted, time.monotonic() + timeout_s)
        finally:
            self._waiters[client] -= 1
            if self._waiters[client] <= 0:
                del self._waiters[client]

    def _checkpoint(self, database: str) -> EventKey:
        """How far `database` is known to be: polled, or saved by this process's projector."""
        return max(self._known.get(database, ZERO), self.store.local_checkpoint(database))

    def _admit(self, client: str) -> None:
        if self._waiters[client] >= self.max_waiters_per_client or self.waiting >= self.max_waiters:
            raise ResourceExhausted(
                "too many requests are waiting for their consistency token; retry shortly",
                retry_after_s=1,
            )
        self._waiters[client] += 1

    async def _wait(self, wanted: EventKey, deadline: float) -> AsyncDatabase[Document]:
        self._ensure_poller()
        async with self._progress:
            while True:
                db = await self.store.active(max_age_s=0.5)
                if wanted <= self._checkpoint(db.name):
                    return db
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Unavailable(
                        "the read model has not caught up with your last write yet; retry shortly",
                        retry_after_s=1,
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._progress.wait(), left)

    async def _probe_head(self) -> EventKey:
        # Single flight: every request that needs the head now shares one look at it.
        if self._head_probe is None or self._head_probe.done():
            self._head_probe = asyncio.create_task(self.head_probe())
        return await asyncio.shield(self._head_probe)

    def _ensure_poller(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        """Reads the active checkpoint while anyone waits: at once after this process's
        projector wrote a batch, else every `poll_s` (another process may lead)."""
        try:
            await self._poll_while_waited()
        except Exception as exc:  # the store is unreachable: waiters time out, the next restarts
            log.warning("checkpoint watcher stopped: %s", type(exc).__name__)

    async def _poll_while_waited(self) -> None:
        while self.waiting:
            db = await self.store.active(max_age_s=0.2)
            checkpoint = await self.store.checkpoint(db)
            if checkpoint > self._known.get(db.name, ZERO):
                self._known[db.name] = checkpoint
                self._head = max(self._head, checkpoint)
                async with self._progress:
                    self._progress.notify_all()
            await self.store.wait_changed(self.poll_s)

    async def close(self) -> None:
        for task in (self._poller, self._head_probe):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
