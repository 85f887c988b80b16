"""What a projection is: a named set of event handlers that upsert read-model documents.

Handlers must be idempotent (the same event applied twice leaves the same documents), because
after a crash the projector replays from its last checkpoint. Events carry the resulting state
of what changed, so handlers mostly `$set` it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from learnflow.projections.store import Document, EventKey


@dataclass(frozen=True)
class Event:
    key: EventKey
    event_type: str
    aggregate_type: str
    aggregate_id: str
    schema_version: int
    payload: dict[str, Any]
    occurred_at: dt.datetime


Handler = Callable[[AsyncDatabase[Document], Event], Awaitable[None]]


class Projection:
    """Subclasses register handlers with `@on("event.type")` and declare their indexes."""

    name = "projection"
    handlers: dict[str, Handler]

    def __init_subclass__(cls) -> None:
        cls.handlers = {}
        for attr in vars(cls).values():
            for event_type in getattr(attr, "_handles", ()):
                cls.handlers[event_type] = attr

    async def ensure_indexes(self, db: AsyncDatabase[Document]) -> None:
        return None

    async def apply(self, db: AsyncDatabase[Document], event: Event) -> None:
        handler = self.handlers.get(event.event_type)
        if handler is not None:
            await handler(self, db, event)  # type: ignore[call-arg, arg-type]


def on(*event_types: str) -> Callable[[Any], Any]:
    def mark(func: Any) -> Any:
        func._handles = event_types
        return func

    return mark
