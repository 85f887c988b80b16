"""The projection suite on the real read store: `Batch` over a fresh MongoDB (FerretDB)
database per store, as the projector (fenced by an epoch) and a rebuild (persistent cache,
replace-wholesale writes) use it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from learnflow.projections.base import Batch
from learnflow.projections.store import EPOCH_FIELD, Document
from tests.conftest import MONGO_URL

pytest.register_assert_rewrite("tests.projection_suite")

from tests.projection_suite import ProjectionSuite, ReadModel, StoreFactory  # noqa: E402


class MongoReadModel(ReadModel):
    def __init__(self, db: AsyncDatabase[Document], persistent: bool) -> None:
        self.db = db
        # A rebuild keeps one batch (and its cache) across flushes; the projector makes one
        # per batch of events, stamped with its leader epoch.
        self._rebuild = Batch(db, persistent=True) if persistent else None

    def batch(self) -> Batch:
        return self._rebuild or Batch(self.db, epoch=3)

    async def documents(self, collection: str) -> list[Document]:
        docs = await self.db[collection].find().sort("_id", 1).to_list()
        for doc in docs:
            doc.pop(EPOCH_FIELD, None)  # the fencing stamp is the store's, not the model's
        return docs


@asynccontextmanager
async def mongo_stores(persistent: bool) -> AsyncIterator[StoreFactory]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        MONGO_URL, serverSelectionTimeoutMS=3000, tz_aware=True
    )
    prefix = f"lfproj_{uuid.uuid4().hex[:8]}"
    names: list[str] = []

    async def fresh() -> ReadModel:
        names.append(f"{prefix}_{len(names)}")
        return MongoReadModel(client[names[-1]], persistent)

    try:
        yield fresh
    finally:
        for name in names:
            await client.drop_database(name)
        await client.close()


class TestProjectionsOnTheReadStore(ProjectionSuite):
    def open_stores(self) -> AbstractAsyncContextManager[StoreFactory]:
        return mongo_stores(persistent=False)


class TestProjectionsInARebuild(ProjectionSuite):
    def open_stores(self) -> AbstractAsyncContextManager[StoreFactory]:
        return mongo_stores(persistent=True)
