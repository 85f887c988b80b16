"""The projection suite on the in-memory batch: every handler's logic, no MongoDB."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from learnflow.projections.base import Batch
from learnflow.projections.memory import MemoryBatch, MemoryStore
from learnflow.projections.store import Document

pytest.register_assert_rewrite("tests.projection_suite")

from tests.projection_suite import ProjectionSuite, ReadModel, StoreFactory  # noqa: E402


class InMemory(ReadModel):
    def __init__(self) -> None:
        self.store = MemoryStore()

    def batch(self) -> Batch:
        return MemoryBatch(self.store)

    async def documents(self, collection: str) -> list[Document]:
        return self.store.documents(collection)


class TestProjectionsInMemory(ProjectionSuite):
    @asynccontextmanager
    async def open_stores(self) -> AsyncIterator[StoreFactory]:
        async def fresh() -> ReadModel:
            return InMemory()

        yield fresh


async def test_the_memory_batch_writes_once_per_flush_and_copies_documents() -> None:
    store = MemoryStore()
    batch = MemoryBatch(store)
    doc: Document = {"_id": "a", "course_id": "c", "tags": ["x"]}
    batch.put("lessons", doc)
    assert store.documents("lessons") == []  # nothing before the flush
    assert batch.pending == 1
    assert await batch.flush() == 1
    doc["tags"].append("changed after the write")
    assert store.documents("lessons") == [{"_id": "a", "course_id": "c", "tags": ["x"]}]
    read = await MemoryBatch(store).get("lessons", "a")
    assert read is not None
    read["tags"].append("changed without a put")
    assert store.get("lessons", "a") == {"_id": "a", "course_id": "c", "tags": ["x"]}


async def test_the_memory_batch_finds_stored_and_pending_documents() -> None:
    store = MemoryStore()
    store.replace("lessons", {"_id": "b", "course_id": "c", "n": 1})
    store.replace("lessons", {"_id": "z", "course_id": "other", "n": 2})
    batch = MemoryBatch(store)
    batch.put("lessons", {"_id": "a", "course_id": "c", "n": 3})
    cached = await batch.get("lessons", "b")
    assert cached is not None
    cached["n"] = 10  # changed in this batch, not yet put: find sees the batch's copy
    found = await batch.find("lessons", "course_id", "c")
    assert [(d["_id"], d["n"]) for d in found] == [("a", 3), ("b", 10)]
    assert await batch.get("lessons", "missing") is None


async def test_a_duplicate_append_is_a_replay() -> None:
    store = MemoryStore()
    batch = MemoryBatch(store)
    batch.append("audit_events", {"_id": "1", "seq": 1, "action": "first"})
    batch.append("audit_events", {"_id": "1", "seq": 1, "action": "again"})
    await batch.flush()
    assert store.documents("audit_events") == [{"_id": "1", "seq": 1, "action": "first"}]


async def test_the_memory_batch_never_touches_a_database() -> None:
    batch = MemoryBatch(MemoryStore())
    with pytest.raises(AssertionError, match="used the database"):
        batch.db["users"]
