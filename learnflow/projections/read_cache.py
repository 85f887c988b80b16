"""Read-model documents cached in each server process, never older than a caller's token.

An entry is a document fetched by `_id`, labelled with the *position it is known fresh to*:
the checkpoint this process's projector had saved before the fetch (documents are written
before their checkpoint, so such a document reflects every event up to it), or nothing when
another process leads. A query carrying a consistency token uses an entry only if its label
reaches the token; otherwise it reads the store (and the watcher has already made the store
include the token). Without a token, an entry serves until the projector of this process
rewrites that document (it says which ones after each batch) or, for changes made by a
projector elsewhere, for at most `ttl_s`.

A fetch that races with an invalidation does not store what it read: the store may have
changed after it. Bounded by `max_docs` (least recently used out); hits, misses and
evictions are counted for metrics.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable

from pymongo.asynchronous.database import AsyncDatabase

from learnflow import metrics
from learnflow.positions import EventKey
from learnflow.projections.store import Document, ReadStore

Key = tuple[str, str, str]  # database, collection, _id


class ReadCache:
    def __init__(self, store: ReadStore, *, max_docs: int = 10_000, ttl_s: float = 1.0) -> None:
        self.store = store
        self.max_docs = max_docs
        self.ttl_s = ttl_s
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self._entries: OrderedDict[Key, tuple[float, EventKey, Document | None]] = OrderedDict()
        self._invalidations = 0
        store.subscribe(self._written)
        metrics.watch_read_cache(self)

    def __len__(self) -> int:
        return len(self._entries)

    async def get(
        self,
        db: AsyncDatabase[Document],
        collection: str,
        doc_id: str,
        at_least: EventKey | None = None,
    ) -> Document | None:
        """The document `_id == doc_id`, or None. Shared with every other reader of it: query
        handlers only read documents (they map them to messages), so no copy is made on this
        hot path; a caller that needs to change one copies it first."""
        key = (db.name, collection, doc_id)
        entry = self._entries.get(key)
        now = time.monotonic()
        if entry is not None:
            stored_at, fresh_to, doc = entry
            if now - stored_at < self.ttl_s and (at_least is None or fresh_to >= at_least):
                self._entries.move_to_end(key)
                self.hits += 1
                metrics.READ_CACHE_HITS.value += 1
                return doc
        self.misses += 1
        metrics.READ_CACHE_MISSES.value += 1
        seen = self._invalidations
        fresh_to = self.store.local_checkpoint(db.name)
        doc = await db[collection].find_one({"_id": doc_id})
        if self._invalidations == seen:
            self._entries[key] = (now, fresh_to, doc)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_docs:
                self._entries.popitem(last=False)
                self.evictions += 1
                metrics.READ_CACHE_EVICTIONS.value += 1
        return doc

    def _written(
        self, database: str, checkpoint: EventKey, keys: Iterable[tuple[str, str]]
    ) -> None:
        self._invalidations += 1
        for collection, doc_id in keys:
            self._entries.pop((database, collection, doc_id), None)

    def clear(self) -> None:
        self._invalidations += 1
        self._entries.clear()
