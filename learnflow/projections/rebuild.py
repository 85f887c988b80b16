"""`learnflow projections rebuild`: replay from event zero into a fresh generation."""

from __future__ import annotations

from learnflow.projections.projector import Projector
from learnflow.projections.store import ReadStore
from learnflow.settings import Settings


async def rebuild(settings: Settings) -> tuple[int, int, float]:
    from learnflow.server import all_projections

    store = ReadStore.connect(settings.mongo_url, settings.mongo_database)
    try:
        projector = Projector(settings.postgres_url, store, all_projections())
        return await projector.rebuild()
    finally:
        await store.close()
