"""`learnflow projections rebuild | status | retry`: read-model maintenance from the CLI."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from learnflow.positions import ZERO, EventKey
from learnflow.projections.projector import PARKED, Projector, head, libpq_url
from learnflow.projections.registry import all_projections
from learnflow.projections.store import Document, ReadStore
from learnflow.settings import Settings


async def rebuild(settings: Settings) -> tuple[int, int, float]:
    store = ReadStore.connect(settings.mongo_url, settings.mongo_database)
    try:
        projector = Projector(settings.postgres_url, store, all_projections())
        return await projector.rebuild()
    finally:
        await store.close()


@dataclass(frozen=True)
class Status:
    generation: int
    checkpoint: EventKey
    head: EventKey
    parked: list[Document]


async def status(settings: Settings) -> Status:
    """Where the active read models stand against the event log, and what is parked."""
    store = ReadStore.connect(settings.mongo_url, settings.mongo_database)
    try:
        generation = await store.active_generation()
        db = store.database(generation)
        checkpoint = await store.checkpoint(db)
        parked = await db[PARKED].find({}).to_list()
        parked.sort(key=lambda doc: (int(doc["txid"]), int(doc["position"])))
        async with await psycopg.AsyncConnection.connect(
            libpq_url(settings.postgres_url), autocommit=True
        ) as conn:
            last = await head(conn) or ZERO
        return Status(generation, checkpoint, last, parked)
    finally:
        await store.close()


async def retry(settings: Settings) -> tuple[int, int]:
    """Applies the parked events again; returns (applied, still parked)."""
    store = ReadStore.connect(settings.mongo_url, settings.mongo_database)
    try:
        return await Projector(settings.postgres_url, store, all_projections()).retry_parked()
    finally:
        await store.close()
