"""What every query handler starts from: the read-model database, honouring read-your-writes."""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase

from learnflow.context import current_call
from learnflow.positions import EventKey
from learnflow.projections.read_cache import ReadCache
from learnflow.projections.store import Document, ReadStore
from learnflow.projections.watcher import CheckpointWatcher


class ReadModels:
    def __init__(
        self,
        store: ReadStore,
        watcher: CheckpointWatcher,
        consistency_wait_s: float,
        cache: ReadCache | None = None,
    ) -> None:
        self.store = store
        self.watcher = watcher
        self.consistency_wait_s = consistency_wait_s
        self.cache = cache

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

    async def database(self) -> AsyncDatabase[Document]:
        """The active read models; when the call carries a consistency token, only once
        they include that write (bounded wait, then UNAVAILABLE with RetryInfo)."""
        call = current_call()
        if call.consistency_token:
            client = (
                f"user:{call.principal.user_id}"
                if call.principal
                else f"addr:{call.client_address}"
            )
            return await self.watcher.wait_for(
                call.consistency_token, client, self.consistency_wait_s
            )
        return await self.store.active()
