"""Whether the databases answer: used by the server's health watcher and `learnflow doctor`."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from learnflow.projections.projector import PARKED
from learnflow.projections.store import ReadStore
from learnflow.storage.unit_of_work import Database


def _first_line(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


async def dependencies_reachable(db: Database, store: ReadStore) -> dict[str, str]:
    """Problems by dependency name (`postgres`, `mongodb`); empty when both answer."""
    problems: dict[str, str] = {}
    try:
        async with asyncio.timeout(3):
            async with db.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception as exc:
        problems["postgres"] = _first_line(exc)
    try:
        async with asyncio.timeout(3):
            await store.client.admin.command("ping")
    except Exception as exc:
        problems["mongodb"] = _first_line(exc)
    return problems


async def parked_events(store: ReadStore) -> int:
    """How many events the active read models could not apply (see the projector)."""
    async with asyncio.timeout(3):
        db = await store.active(max_age_s=1.0)
        return await db[PARKED].count_documents({})
