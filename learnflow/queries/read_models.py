"""What every query handler starts from: the read-model database, honouring read-your-writes."""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase

from learnflow.context import current_call
from learnflow.projections.store import Document, ReadStore
from learnflow.projections.watcher import CheckpointWatcher


class ReadModels:
    def __init__(
        self, store: ReadStore, watcher: CheckpointWatcher, consistency_wait_s: float
    ) -> None:
        self.store = store
        self.watcher = watcher
        self.consistency_wait_s = consistency_wait_s

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
