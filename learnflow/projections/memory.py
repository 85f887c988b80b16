"""An in-memory read store, so the projections' logic runs in unit tests with no MongoDB.

`MemoryBatch` is a `Batch` whose reads and writes go to a `MemoryStore` (collections as dicts
of `_id` -> document) instead of a database; the handlers run on it unchanged. Documents are
deep-copied on the way in and out, as a round trip through MongoDB would, so a handler that
keeps mutating a document after `put` cannot change what was written. A duplicate append is
ignored (a replay), as `Batch` ignores MongoDB's duplicate-key errors. Fencing epochs and the
rebuild's persistent cache are the real store's business and are not modelled.
"""

from __future__ import annotations

import copy
from typing import NoReturn, cast

from pymongo.asynchronous.database import AsyncDatabase

from learnflow.projections.base import Batch
from learnflow.projections.store import Document


class MemoryStore:
    """Read-model collections in memory: name -> `_id` -> document."""

    def __init__(self) -> None:
        self.collections: dict[str, dict[str, Document]] = {}

    def get(self, collection: str, doc_id: str) -> Document | None:
        doc = self.collections.get(collection, {}).get(doc_id)
        return copy.deepcopy(doc) if doc is not None else None

    def find(self, collection: str, field: str, value: object) -> list[Document]:
        """Documents whose `field` equals `value`, by `_id`."""
        return [doc for doc in self.documents(collection) if doc.get(field) == value]

    def documents(self, collection: str) -> list[Document]:
        """Every document of `collection`, by `_id`."""
        docs = self.collections.get(collection, {})
        return [copy.deepcopy(docs[doc_id]) for doc_id in sorted(docs)]

    def replace(self, collection: str, doc: Document) -> None:
        self.collections.setdefault(collection, {})[str(doc["_id"])] = copy.deepcopy(doc)

    def insert(self, collection: str, doc: Document) -> bool:
        """Inserts `doc` unless its `_id` exists; whether it was inserted."""
        docs = self.collections.setdefault(collection, {})
        if str(doc["_id"]) in docs:
            return False
        docs[str(doc["_id"])] = copy.deepcopy(doc)
        return True


class _NoDatabase:
    """Stands in for the database `Batch` would use: touching it is a bug of `MemoryBatch`."""

    def __getattr__(self, name: str) -> NoReturn:
        raise AssertionError(f"MemoryBatch used the database ({name})")

    def __getitem__(self, name: str) -> NoReturn:
        raise AssertionError(f"MemoryBatch used the database (collection {name!r})")


class MemoryBatch(Batch):
    """A `Batch` over a `MemoryStore`: same caching and write-once-per-batch behaviour."""

    def __init__(self, store: MemoryStore) -> None:
        super().__init__(cast(AsyncDatabase[Document], _NoDatabase()))
        self.store = store

    async def get(self, collection: str, doc_id: str) -> Document | None:
        key = (collection, doc_id)
        if key not in self._docs:
            self._docs[key] = self.store.get(collection, doc_id)
        return self._docs[key]

    async def find(self, collection: str, field: str, value: str) -> list[Document]:
        for stored in self.store.find(collection, field, value):
            self._docs.setdefault((collection, str(stored["_id"])), stored)
        found: dict[str, Document] = {}
        for (name, doc_id), cached in self._docs.items():
            if name == collection and cached is not None and cached.get(field) == value:
                found[doc_id] = cached
        return [found[k] for k in sorted(found)]

    async def flush(self) -> int:
        writes = 0
        for (collection, _), doc in self._dirty.items():
            self.store.replace(collection, doc)
            writes += 1
        for collection, docs in self._appends.items():
            for doc in docs:
                self.store.insert(collection, doc)
                writes += 1
        self._dirty.clear()
        self._appends.clear()
        self._docs.clear()
        return writes
