"""The MongoDB side of the read models: generations, checkpoints, consistency tokens.

Read models live in one database per *generation* (`<name>_g<N>`); a pointer document says
which generation queries read. A rebuild fills generation N+1 from event zero and flips the
pointer once caught up, so readers never see a half-built model. Each generation stores its
own checkpoint: the commit-order key `(txid, position)` of the last event applied to it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from learnflow import tracing
from learnflow.errors import Unavailable
from learnflow.positions import ZERO, EventKey

Document = dict[str, Any]


EPOCH_FIELD = "e"  # the leader epoch that last wrote a document (absent: written by a rebuild)


class Deposed(Exception):
    """A later projector has written here: this one lost its lock and must stop writing."""

    def __init__(self, epoch: int | None) -> None:
        super().__init__(f"projector epoch {epoch} was superseded by a later leader")
        self.epoch = epoch


def written_by_epoch_at_most(epoch: int) -> Document:
    """Filter: the document was last written by `epoch` or an earlier one (or by a rebuild)."""
    return {EPOCH_FIELD: {"$not": {"$gt": epoch}}}


class ReadStore:
    def __init__(self, client: AsyncMongoClient[Document], name: str) -> None:
        self.client = client
        self.name = name
        self.meta = client[f"{name}_meta"]["generations"]
        self._cached: tuple[float, int] | None = None
        self._databases: dict[int, AsyncDatabase[Document]] = {}
        self._changed = asyncio.Event()
        # What this process's projector has written: checkpoints by database, and listeners
        # told which documents each batch rewrote (the read cache).
        self._local_checkpoints: dict[str, EventKey] = {}
        self._listeners: list[Callable[[str, EventKey, Iterable[tuple[str, str]]], None]] = []

    @classmethod
    def connect(cls, url: str, name: str) -> ReadStore:
        client: AsyncMongoClient[Document] = AsyncMongoClient(
            url,
            serverSelectionTimeoutMS=3000,
            tz_aware=True,
            event_listeners=tracing.mongo_listeners(),  # none while tracing is off
        )
        return cls(client, name)

    async def close(self) -> None:
        await self.client.close()

    def database(self, generation: int) -> AsyncDatabase[Document]:
        # Made once per generation: every query asks, and a fresh AsyncDatabase is not free.
        found = self._databases.get(generation)
        if found is None:
            found = self._databases[generation] = self.client[f"{self.name}_g{generation}"]
        return found

    async def active_generation(self, max_age_s: float = 0.0) -> int:
        now = time.monotonic()
        if self._cached and now - self._cached[0] <= max_age_s:
            return self._cached[1]
        doc = await self.meta.find_one({"_id": "active"})
        generation = int(doc["generation"]) if doc else 1
        self._cached = (now, generation)
        return generation

    async def active(self, max_age_s: float = 0.5) -> AsyncDatabase[Document]:
        return self.database(await self.active_generation(max_age_s))

    async def activate(self, generation: int) -> None:
        await self.meta.update_one(
            {"_id": "active"}, {"$set": {"generation": generation}}, upsert=True
        )
        self._cached = None

    @staticmethod
    async def checkpoint(db: AsyncDatabase[Document]) -> EventKey:
        doc = await db["checkpoints"].find_one({"_id": "projector"})
        return EventKey(int(doc["txid"]), int(doc["position"])) if doc else ZERO

    @staticmethod
    async def save_checkpoint(
        db: AsyncDatabase[Document], key: EventKey, epoch: int | None = None
    ) -> None:
        """Moves the checkpoint of `db`; with an `epoch` (see `next_epoch`), only if no later
        leader has written it, else `Deposed`."""
        # Stored as int64: xid8 values fit, and MongoDB and FerretDB both compare them.
        fields: Document = {"txid": key.txid, "position": key.position, "at": time.time()}
        query: Document = {"_id": "projector"}
        if epoch is not None:
            fields[EPOCH_FIELD] = epoch
            query.update(written_by_epoch_at_most(epoch))
        try:
            await db["checkpoints"].update_one(query, {"$set": fields}, upsert=True)
        except DuplicateKeyError:  # the upsert found the checkpoint, but a later leader's
            raise Deposed(epoch) from None

    async def next_epoch(self) -> int:
        """A number greater than every earlier leader's, taken by a projector as it becomes
        the leader (the advisory lock serialises that). Documents it writes carry it, and a
        write over a document of a later epoch is refused: the fencing token that keeps a
        leader which lost its lock mid-batch from overwriting its successor's newer state."""
        doc = await self.meta.find_one_and_update(
            {"_id": "epoch"},
            {"$inc": {"epoch": 1}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert doc is not None
        return int(doc["epoch"])

    def notify_changed(
        self,
        database: str = "",
        checkpoint: EventKey = ZERO,
        written: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Called by the projector of this process after each batch it wrote: the database,
        its new checkpoint and the (collection, _id) of every document the batch rewrote."""
        if database:
            self._local_checkpoints[database] = max(
                checkpoint, self._local_checkpoints.get(database, ZERO)
            )
            keys = list(written)
            for listener in self._listeners:
                listener(database, checkpoint, keys)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def subscribe(
        self, listener: Callable[[str, EventKey, Iterable[tuple[str, str]]], None]
    ) -> None:
        self._listeners.append(listener)

    def local_checkpoint(self, database: str) -> EventKey:
        """The checkpoint this process's projector last saved in `database` (ZERO if none)."""
        return self._local_checkpoints.get(database, ZERO)

    async def wait_changed(self, timeout_s: float) -> bool:
        """Waits until this process's projector writes a batch, at most `timeout_s`.

        Readers served by a replica whose projector stands by only see the timeout, so they
        must treat this as a hint and re-read (polling fallback)."""
        changed = self._changed
        try:
            await asyncio.wait_for(changed.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def wait_for(self, token: str, timeout_s: float) -> AsyncDatabase[Document]:
        """Read-your-writes: the active read models once they include `token`'s event."""
        wanted = EventKey.parse(token)
        deadline = time.monotonic() + timeout_s
        delay = 0.005
        while True:
            db = await self.active(max_age_s=0.5)
            if await self.checkpoint(db) >= wanted:
                return db
            if time.monotonic() >= deadline:
                raise Unavailable(
                    "the read model has not caught up with your last write yet; retry shortly",
                    retry_after_s=1,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
