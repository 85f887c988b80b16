"""What a projection is: a named set of event handlers that change read-model documents.

Handlers work on a `Batch`: the documents one batch of events touches, read once from MongoDB,
changed in memory, written once when the batch ends (then the checkpoint moves). That keeps a
busy aggregate (a course whose counts change with every enrollment) at one write per batch,
and it matters on FerretDB 1.24/SQLite, where only `_id` lookups and inserts are cheap and
every update scans its collection.

Idempotency and ordering: every document a handler writes carries `v`, the *position* of the
last event applied to it (`Event.version`), and a handler skips an event its document already
reflects (`stale(doc, event)`), so replaying after a crash (events after the checkpoint, some
already written) changes nothing. Positions, not the projector's (txid, position) read order,
decide: two commands that change one aggregate are serialised by its row lock and append
their events while holding it, so positions follow that order, while transaction ids are
taken at a transaction's first write and may not (an enrollment counted 9 applied after the one
counted 10). A document fed by two aggregates keeps one such version per aggregate
(`v_course` next to `v` in progress documents).

Fencing: a projector that lost its lock (its PostgreSQL session died) only notices at its next
round trip, and a write it had in flight may land late. Each leader therefore takes an epoch
(`ReadStore.next_epoch`) and stamps it on the documents it writes. A replace is conditional on
the epoch the document carried when this projector read it (`{_id, e: <that epoch>}`: an
equality, so even FerretDB pushes it down with the `_id`); if a later leader wrote it meanwhile
nothing matches, and the deposed projector's batch ends (`Deposed`), so it can never overwrite
its successor's newer state. A late write that lands before the successor touches the document
is harmless: it holds the state after events the successor will replay onto it.

Cost that does not grow with the data: every write is by exact `_id`, each document is read at
most once per batch and written once, and the leader keeps the documents it wrote in a
`DocumentCache` (it is their only writer while its epoch holds), so a hot document (a course
whose counts move with every enrollment) is not even read back from the store.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pymongo import InsertOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from learnflow.events import EventType
from learnflow.positions import EventKey
from learnflow.projections.store import (
    EPOCH_FIELD,
    Deposed,
    Document,
    written_by_epoch_at_most,
)

DUPLICATE_KEY = 11000


@dataclass(frozen=True)
class Event:
    key: EventKey
    event_type: str
    aggregate_type: str
    aggregate_id: str
    schema_version: int
    payload: dict[str, Any]
    occurred_at: dt.datetime
    # W3C traceparent of the span that wrote it (None unless tracing was on): batch links.
    trace_parent: str | None = None

    @property
    def version(self) -> int:
        """The event's position, stored as `v` (see the module docstring)."""
        return self.key.position


def stale(doc: Document | None, event: Event, field: str = "v") -> bool:
    """Whether `doc` already reflects `event` (or a later event of the same aggregate)."""
    return doc is not None and int(doc.get(field, 0)) >= event.version


def utc_key(value: str | None) -> str:
    """An ISO timestamp normalised to UTC with fixed width, so strings sort like times."""
    if not value:
        return ""
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class DocumentCache:
    """The leader's copies of documents as it last wrote (or read) them, by database,
    collection and `_id`; least recently used first out. Valid only for one epoch and only
    while every batch succeeds: the projector drops it otherwise."""

    def __init__(self, max_docs: int = 50_000) -> None:
        self.max_docs = max_docs
        self._docs: OrderedDict[tuple[str, str, str], Document] = OrderedDict()

    def __len__(self) -> int:
        return len(self._docs)

    def get(self, db: str, collection: str, doc_id: str) -> Document | None:
        key = (db, collection, doc_id)
        doc = self._docs.get(key)
        if doc is None:
            return None
        self._docs.move_to_end(key)
        return copy.deepcopy(doc)

    def put(self, db: str, collection: str, doc: Document) -> None:
        key = (db, collection, str(doc["_id"]))
        self._docs[key] = copy.deepcopy(doc)
        self._docs.move_to_end(key)
        while len(self._docs) > self.max_docs:
            self._docs.popitem(last=False)

    def clear(self) -> None:
        self._docs.clear()


class Batch:
    """The unit of work of the projector: documents read once, written once.

    `persistent=True` (used by rebuilds into a fresh, not yet readable generation) keeps the
    documents across batches and, as long as nothing was evicted, knows that a document it
    has not seen does not exist, so a rebuild reads nothing back; it writes by replacing
    (delete + insert per batch), which is safe only because nobody reads that generation yet.
    """

    def __init__(
        self,
        db: AsyncDatabase[Document],
        persistent: bool = False,
        max_cached: int = 500_000,
        epoch: int | None = None,
        cache: DocumentCache | None = None,
    ) -> None:
        self.db = db
        self.cache = cache
        self.persistent = persistent
        self.epoch = epoch  # the writing leader's (see the module docstring); None in a rebuild
        self.max_cached = max_cached
        self.complete = persistent  # every existing document is in the cache
        self._docs: dict[tuple[str, str], Document | None] = {}
        self._existed: set[tuple[str, str]] = set()  # as stored in MongoDB
        # The epoch each existing document carried when read: the write's equality guard.
        self._stored_epoch: dict[tuple[str, str], Any] = {}
        self._dirty: dict[tuple[str, str], Document] = {}
        self._appends: dict[str, list[Document]] = {}
        self.written: list[tuple[str, str]] = []  # (collection, _id) rewritten by flushes

    @property
    def pending(self) -> int:
        """Documents changed since the last flush."""
        return len(self._dirty) + sum(len(docs) for docs in self._appends.values())

    async def get(self, collection: str, doc_id: str) -> Document | None:
        """The document (mutable: change it, then `put` it), or None."""
        key = (collection, doc_id)
        if key in self._docs:
            return self._docs[key]
        if self.complete:
            return None
        doc = self.cache.get(self.db.name, collection, doc_id) if self.cache else None
        if doc is None:
            doc = await self.db[collection].find_one({"_id": doc_id})
        self._docs[key] = doc
        if doc is not None:
            self._existed.add(key)
            self._stored_epoch[key] = doc.get(EPOCH_FIELD)
        return doc

    def put(self, collection: str, doc: Document) -> None:
        """Marks `doc` (with `_id`) to be written at the end of the batch."""
        key = (collection, str(doc["_id"]))
        self._docs[key] = doc
        self._dirty[key] = doc

    def append(self, collection: str, doc: Document) -> None:
        """An insert-only document (an audit record): written once, a duplicate is a replay."""
        self._appends.setdefault(collection, []).append(doc)

    async def find(self, collection: str, field: str, value: str) -> list[Document]:
        """Documents whose `field` (one that never changes, such as course_id) is `value`."""
        found: dict[str, Document] = {}
        if not self.complete:
            async for stored in self.db[collection].find({field: value}):
                key = (collection, str(stored["_id"]))
                if key not in self._docs:
                    self._docs[key] = stored
                    self._existed.add(key)
                    self._stored_epoch[key] = stored.get(EPOCH_FIELD)
        for (name, doc_id), cached in self._docs.items():
            if name == collection and cached is not None and cached.get(field) == value:
                found[doc_id] = cached
        return [found[k] for k in sorted(found)]

    async def flush(self) -> int:
        """Writes the changed documents; returns how many writes were sent."""
        by_collection: dict[str, list[tuple[str, Document]]] = {}
        for (collection, doc_id), doc in self._dirty.items():
            by_collection.setdefault(collection, []).append((doc_id, doc))
        writes = 0
        for collection in sorted(set(by_collection) | set(self._appends), key=_flush_order):
            docs = by_collection.get(collection, [])
            appends = self._appends.get(collection, [])
            writes += len(docs) + len(appends)
            if self.persistent:
                await self._replace_wholesale(collection, docs, appends)
            else:
                await self._write_guarded(collection, docs, appends)
        self._existed.update(self._dirty)
        self.written.extend(self._dirty)
        if self.cache is not None:
            for (collection, _), doc in self._dirty.items():
                self.cache.put(self.db.name, collection, doc)
        self._dirty.clear()
        self._appends.clear()
        if not self.persistent:
            self._docs.clear()
            self._existed.clear()
            self._stored_epoch.clear()
        elif len(self._docs) > self.max_cached:
            self._docs.clear()
            self.complete = False
        return writes

    async def _replace_wholesale(
        self, collection: str, docs: list[tuple[str, Document]], appends: list[Document]
    ) -> None:
        coll = self.db[collection]
        existing = [doc_id for doc_id, _ in docs if (collection, doc_id) in self._existed]
        if existing:
            await coll.delete_many({"_id": {"$in": existing}})
        await _insert_ignoring_duplicates(self.db, collection, [d for _, d in docs] + appends)

    async def _write_guarded(
        self, collection: str, docs: list[tuple[str, Document]], appends: list[Document]
    ) -> None:
        coll = self.db[collection]
        if self.epoch is not None:
            for _, doc in docs:
                doc[EPOCH_FIELD] = self.epoch
        new = [doc for doc_id, doc in docs if (collection, doc_id) not in self._existed]
        old = [doc for doc_id, doc in docs if (collection, doc_id) in self._existed]
        # A new document may exist after all if a previous run wrote it and crashed before
        # its checkpoint: its epoch is unknown, so it is replaced under the range guard.
        surprises = await _insert_ignoring_duplicates(self.db, collection, new)
        # One by one: FerretDB 1.24/SQLite hangs on bulk replaces (bulk inserts are fine).
        for doc in old + surprises:
            query: Document = {"_id": doc["_id"]}
            if self.epoch is not None:
                key = (collection, str(doc["_id"]))
                if key in self._stored_epoch:
                    query[EPOCH_FIELD] = self._stored_epoch[key]  # null matches "absent"
                else:
                    query.update(written_by_epoch_at_most(self.epoch))
            result = await coll.replace_one(query, doc)
            if result.matched_count == 0 and self.epoch is not None:
                raise Deposed(self.epoch)
        await _insert_ignoring_duplicates(self.db, collection, appends)


# Documents other documents are derived from are written last: if the projector dies mid-flush,
# the replay finds the source not yet updated and derives again (a course's title is copied
# into its lessons only when the course document shows the change).
WRITTEN_LAST = ("progress", "courses", "progress_courses", "progress_users")


def _flush_order(collection: str) -> tuple[int, str]:
    if collection in WRITTEN_LAST:
        return 1 + WRITTEN_LAST.index(collection), collection
    return 0, collection


async def _insert_ignoring_duplicates(
    db: AsyncDatabase[Document], collection: str, docs: list[Document]
) -> list[Document]:
    """Inserts `docs`; returns those that already existed."""
    if not docs:
        return []
    try:
        await db[collection].bulk_write([InsertOne(doc) for doc in docs], ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        return [docs[int(e["index"])] for e in errors]
    return []


Handler = Callable[[Batch, Event], Awaitable[None]]


class Projection:
    """Subclasses register handlers with `@on(EVENT_TYPE, ...)` and declare their indexes."""

    name = "projection"
    handlers: dict[str, Handler]

    def __init_subclass__(cls) -> None:
        cls.handlers = {}
        for attr in vars(cls).values():
            for event_type in getattr(attr, "_handles", ()):
                cls.handlers[event_type] = attr

    async def ensure_indexes(self, db: AsyncDatabase[Document]) -> None:
        return None

    async def apply(self, batch: Batch, event: Event) -> None:
        handler = self.handlers.get(event.event_type)
        if handler is not None:
            await handler(self, batch, event)  # type: ignore[call-arg, arg-type]


def on(*event_types: EventType[Any]) -> Callable[[Any], Any]:
    """Registers the decorated method as the handler of `event_types` (from the catalogue)."""

    def mark(func: Any) -> Any:
        func._handles = tuple(event_type.name for event_type in event_types)
        return func

    return mark
