"""What every query handler starts from: the read-model database, honouring read-your-writes."""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase

from learnflow.context import current_call
from learnflow.projections.store import Document, ReadStore


class ReadModels:
    def __init__(self, store: ReadStore, consistency_wait_s: float) -> None:
        self.store = store
        self.consistency_wait_s = consistency_wait_s

    async def database(self) -> AsyncDatabase[Document]:
        """The active read models; when the call carries a consistency token, only once
        they include that write (bounded wait, then UNAVAILABLE with RetryInfo)."""
        token = current_call().consistency_token
        if token:
            return await self.store.wait_for(token, self.consistency_wait_s)
        return await self.store.active()
