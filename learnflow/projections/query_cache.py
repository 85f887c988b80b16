"""Results of whole read-model queries cached in each server process, by the read cache's rules.

The read cache (`read_cache.py`) holds documents fetched by `_id`; this one holds what a list
query returned (a page of documents and, for a first page, the total), under a key the caller
builds from everything that decides the result. The rules are the same:

- An entry is labelled with the *position it is known fresh to*: the checkpoint this process's
  projector had saved before the fetch began (documents are written before their checkpoint,
  so the query saw every event up to it), or nothing when another process leads. A read
  carrying a consistency token uses an entry only if its label reaches the token.
- A query's result can change when ANY document of its collection changes (a course published
  enters every page it sorts into), so when this process's projector rewrites a document of a
  collection, every entry of that collection (in that database) is dropped. Changes made by a
  projector elsewhere are seen after at most `ttl_s`, counted from the fetch's start.
- A fetch that overlaps an invalidation of its collection does not store what it read.
- Bounded by `max_entries` (least recently used out); hits, misses, fetches shared and
  evictions are counted for metrics.

Concurrent misses of one key share one fetch: on FerretDB a catalog page costs hundreds of
milliseconds, and eight callers arriving together would otherwise run eight of them (each
slower for the others). A caller joins a fetch in flight only when an entry stored by it would
serve that caller: started less than `ttl_s` ago, labelled at least the caller's token, and
no invalidation of its collection since it started. The fetch runs as a task of its own, so a
caller that gives up (deadline, cancel) does not cancel it for the others.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from learnflow import metrics
from learnflow.positions import EventKey
from learnflow.projections.store import ReadStore

T = TypeVar("T")
Key = tuple[str, str, str]  # database, collection, the caller's key


@dataclass(frozen=True)
class _Entry:
    started: float  # monotonic time the fetch began: the TTL counts from it
    fresh_to: EventKey
    value: object


@dataclass
class _Flight:
    started: float
    fresh_to: EventKey
    version: tuple[int, int]  # (clears, invalidations of the collection) when it began
    task: asyncio.Task[Any] | None = None


class QueryCache:
    def __init__(self, store: ReadStore, *, max_entries: int = 500, ttl_s: float = 1.0) -> None:
        self.store = store
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self.hits = 0
        self.misses = 0
        self.shared = 0  # misses answered by another caller's fetch in flight
        self.evictions = 0
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()
        self._flights: dict[Key, _Flight] = {}
        # Invalidations by (database, collection), and of everything (`clear`): a fetch stores
        # its result only if neither moved while it ran.
        self._versions: dict[tuple[str, str], int] = {}
        self._clears = 0
        store.subscribe(self._written)
        metrics.watch_query_cache(self)

    def __len__(self) -> int:
        return len(self._entries)

    async def get(
        self,
        database: str,
        collection: str,
        key: str,
        fetch: Callable[[], Awaitable[T]],
        at_least: EventKey | None = None,
    ) -> T:
        """What `fetch()` returns for `key`, a query on `collection` of `database`: from an
        entry or a fetch in flight when they are fresh enough for this caller, else fetched.
        `key` must name everything that decides the result (filters, order, page position
        and size); the same key must always mean the same type of result. The value is shared
        with every other reader of the key: callers only read it."""
        full = (database, collection, key)
        now = time.monotonic()
        entry = self._entries.get(full)
        if entry is not None and self._serves(entry.started, entry.fresh_to, now, at_least):
            self._entries.move_to_end(full)
            self.hits += 1
            metrics.QUERY_CACHE_HITS.inc()
            return cast(T, entry.value)
        flight = self._flights.get(full)
        if (
            flight is not None
            and flight.task is not None
            and flight.version == self._version(database, collection)
            and self._serves(flight.started, flight.fresh_to, now, at_least)
        ):
            self.shared += 1
            metrics.QUERY_CACHE_SHARED.inc()
            return cast(T, await asyncio.shield(flight.task))
        self.misses += 1
        metrics.QUERY_CACHE_MISSES.inc()
        flight = _Flight(
            started=now,
            fresh_to=self.store.local_checkpoint(database),
            version=self._version(database, collection),
        )
        # Later callers join this fetch rather than an older one they could not use.
        self._flights[full] = flight
        flight.task = asyncio.create_task(self._fill(full, flight, fetch))
        flight.task.add_done_callback(_retrieve)
        return cast(T, await asyncio.shield(flight.task))

    def _serves(
        self, started: float, fresh_to: EventKey, now: float, at_least: EventKey | None
    ) -> bool:
        return now - started < self.ttl_s and (at_least is None or fresh_to >= at_least)

    def _version(self, database: str, collection: str) -> tuple[int, int]:
        return self._clears, self._versions.get((database, collection), 0)

    async def _fill(self, full: Key, flight: _Flight, fetch: Callable[[], Awaitable[T]]) -> T:
        try:
            value = await fetch()
        finally:
            if self._flights.get(full) is flight:
                del self._flights[full]
        if self._version(full[0], full[1]) == flight.version:
            self._entries[full] = _Entry(flight.started, flight.fresh_to, value)
            self._entries.move_to_end(full)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
                self.evictions += 1
                metrics.QUERY_CACHE_EVICTIONS.inc()
        return value

    def _written(
        self, database: str, checkpoint: EventKey, keys: Iterable[tuple[str, str]]
    ) -> None:
        collections = {collection for collection, _ in keys}
        for collection in collections:
            place = (database, collection)
            self._versions[place] = self._versions.get(place, 0) + 1
        if collections:
            for full in [k for k in self._entries if k[0] == database and k[1] in collections]:
                del self._entries[full]

    def clear(self) -> None:
        self._clears += 1
        self._entries.clear()


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Marks a fetch's exception as seen: every caller may have given up before it ended."""
    if not task.cancelled():
        task.exception()
