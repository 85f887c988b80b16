"""What every query handler starts from: the read-model database, honouring read-your-writes."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pymongo.asynchronous.database import AsyncDatabase

from learnflow.context import Ctx, add_trailing_metadata, current_call
from learnflow.positions import EventKey
from learnflow.projections.query_cache import QueryCache
from learnflow.projections.read_cache import ReadCache
from learnflow.projections.store import Document, ReadStore
from learnflow.projections.watcher import CheckpointWatcher

T = TypeVar("T")


class BuiltFrom:
    """Replies built from cached documents, kept with the very document object they were
    built from: the read cache hands every reader of a document the same object until the
    document changes (then a new object), so `is` says whether a kept reply is current.
    Holding the document also keeps its id from being reused while the entry lives. Bounded
    (least recently used out). Replies are shared: handlers return them and never change them.
    """

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[int, str], tuple[Document, Any]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, doc: Document, purpose: str, build: Callable[[Document], T]) -> T:
        key = (id(doc), purpose)
        found = self._entries.get(key)
        if found is not None and found[0] is doc:
            self._entries.move_to_end(key)
            built: T = found[1]
            return built
        value = build(doc)
        self._entries[key] = (doc, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return value


class ReadModels:
    def __init__(
        self,
        store: ReadStore,
        watcher: CheckpointWatcher,
        consistency_wait_s: float,
        cache: ReadCache | None = None,
        public_max_age_s: int = 0,
        queries: QueryCache | None = None,
    ) -> None:
        self.store = store
        self.watcher = watcher
        self.consistency_wait_s = consistency_wait_s
        self.cache = cache
        self.built = BuiltFrom(cache.max_docs) if cache is not None else None
        self.public_max_age_s = public_max_age_s
        self.queries = queries

    def shareable(self, context: Ctx) -> None:
        """Marks a public read's answer for HTTP caches (the gateway turns this metadata into
        headers): an anonymous caller without a consistency token gets `public, max-age`, so
        shared caches may keep the catalog for a few seconds; anyone else the gateway's default
        (`private, no-cache`). `vary` keeps a cache from answering a signed-in or
        token-carrying request with the anonymous copy."""
        call = current_call()
        pairs = [("vary", "authorization, x-consistency-token")]
        if call.principal is None and not call.consistency_token and self.public_max_age_s > 0:
            pairs.append(("cache-control", f"public, max-age={self.public_max_age_s}"))
        add_trailing_metadata(context, *pairs)

    def reply(self, doc: Document, purpose: str, build: Callable[[Document], T]) -> T:
        """`build(doc)`, or what it gave for this same cached document before."""
        if self.built is None:
            return build(doc)  # documents are fresh objects each time: nothing to keep
        return self.built.get(doc, purpose, build)

    async def get(
        self, db: AsyncDatabase[Document], collection: str, doc_id: str
    ) -> Document | None:
        """The document `_id == doc_id` of `db` (from `database()`), through the cache when
        there is one: never older than the call's consistency token."""
        if self.cache is None:
            return await db[collection].find_one({"_id": doc_id})
        token = current_call().consistency_token
        at_least = EventKey.parse(token) if token else None
        return await self.cache.get(db, collection, doc_id, at_least)

    async def query(
        self,
        db: AsyncDatabase[Document],
        collection: str,
        key: str,
        fetch: Callable[[], Awaitable[T]],
    ) -> T:
        """`fetch()`, a query on `collection` of `db` (from `database()`), through the query
        cache when there is one: never older than the call's consistency token. `key` names
        everything that decides the result, and nothing of the caller may: only for queries
        whose answer is the same for every caller."""
        if self.queries is None:
            return await fetch()
        token = current_call().consistency_token
        at_least = EventKey.parse(token) if token else None
        return await self.queries.get(db.name, collection, key, fetch, at_least)

    async def database(self) -> AsyncDatabase[Document]:
        """The active read models; when the call carries a consistency token, only once
        they include that write (bounded wait, then UNAVAILABLE with RetryInfo)."""
        call = current_call()
        if call.consistency_token:
            client = call.principal.subject if call.principal else f"addr:{call.client_address}"
            return await self.watcher.wait_for(
                call.consistency_token, client, self.consistency_wait_s
            )
        return await self.store.active()
