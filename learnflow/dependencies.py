"""Whether the databases answer: used by the server's health watcher and `learnflow doctor`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy import text

from learnflow.positions import EventKey
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


LAG_COUNT_CAP = 100_000

# Events after a checkpoint, in commit order: how many (up to the cap: the count must stay cheap
# when far behind) and how old the first is (the oldest one not applied).
_LAG_SQL = text(
    """
SELECT count(*), extract(epoch FROM now() - min(occurred_at))
FROM (SELECT occurred_at FROM events
      WHERE (txid, position) > (CAST(:txid AS text)::xid8, :position)
      ORDER BY events.txid, events.position
      LIMIT :cap) AS behind
"""
)


@dataclass(frozen=True)
class ProjectionProgress:
    checkpoint: EventKey
    lag_events: int
    lag_seconds: float


async def projection_progress(db: Database, store: ReadStore) -> ProjectionProgress:
    """Where the active read models are against the event log (the projection-lag metrics)."""
    async with asyncio.timeout(3):
        read_models = await store.active(max_age_s=1.0)
        checkpoint = await store.checkpoint(read_models)
        async with db.engine.connect() as conn:
            row = (
                await conn.execute(
                    _LAG_SQL,
                    {
                        "txid": str(checkpoint.txid),
                        "position": checkpoint.position,
                        "cap": LAG_COUNT_CAP,
                    },
                )
            ).one()
    events, seconds = row
    return ProjectionProgress(checkpoint, int(events), float(seconds or 0.0))


async def parked_events(store: ReadStore) -> int:
    """How many events the active read models could not apply (see the projector)."""
    async with asyncio.timeout(3):
        db = await store.active(max_age_s=1.0)
        return await db[PARKED].count_documents({})
