"""Read models of accounts: user profiles and the admins' audit trail."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from learnflow.events import AUDIT_RECORDED, USER_EVENTS
from learnflow.projections.base import Batch, Event, Projection, on, stale
from learnflow.projections.store import Document


class UserProfiles(Projection):
    name = "users"

    async def ensure_indexes(self, db: AsyncDatabase[Document]) -> None:
        await db["users"].create_index([("email", ASCENDING)], unique=True)

    @on(*USER_EVENTS)
    async def user_changed(self, batch: Batch, event: Event) -> None:
        p = event.payload
        doc = await batch.get("users", p["id"])
        if stale(doc, event):
            return
        batch.put(
            "users",
            {
                "_id": p["id"],
                "email": p["email"],
                "display_name": p["display_name"],
                "role": p["role"],
                "disabled": p["disabled"],
                "created_at": p["created_at"],
                "v": event.version,
            },
        )


class AuditTrail(Projection):
    """Insert-only: an audit record never changes, a duplicate insert is a replay."""

    name = "audit_events"

    async def ensure_indexes(self, db: AsyncDatabase[Document]) -> None:
        await db["audit_events"].create_index([("seq", DESCENDING)])
        await db["audit_events"].create_index([("actor_id", ASCENDING), ("seq", DESCENDING)])
        await db["audit_events"].create_index([("action", ASCENDING), ("seq", DESCENDING)])
        await db["audit_events"].create_index(
            [("actor_id", ASCENDING), ("action", ASCENDING), ("seq", DESCENDING)]
        )

    @on(AUDIT_RECORDED)
    async def recorded(self, batch: Batch, event: Event) -> None:
        p = event.payload
        batch.append(
            "audit_events",
            {"_id": str(p["id"]), **{k: v for k, v in p.items() if k != "id"}, "seq": int(p["id"])},
        )
