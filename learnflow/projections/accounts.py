"""Read models of accounts: user profiles and the admins' audit trail."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from learnflow.projections.base import Event, Projection, on
from learnflow.projections.store import Document


class UserProfiles(Projection):
    name = "users"

    async def ensure_indexes(self, db: AsyncDatabase[Document]) -> None:
        await db["users"].create_index([("email", ASCENDING)], unique=True)

    @on("user.registered", "user.role_changed", "user.disabled", "user.enabled")
    async def user_changed(self, db: AsyncDatabase[Document], event: Event) -> None:
        p = event.payload
        await db["users"].update_one(
            {"_id": p["id"]},
            {
                "$set": {
                    "email": p["email"],
                    "display_name": p["display_name"],
                    "role": p["role"],
                    "disabled": p["disabled"],
                    "created_at": p["created_at"],
                }
            },
            upsert=True,
        )


class AuditTrail(Projection):
    name = "audit_events"

    async def ensure_indexes(self, db: AsyncDatabase[Document]) -> None:
        await db["audit_events"].create_index([("seq", DESCENDING)])
        await db["audit_events"].create_index([("actor_id", ASCENDING), ("seq", DESCENDING)])
        await db["audit_events"].create_index([("action", ASCENDING), ("seq", DESCENDING)])

    @on("audit.recorded")
    async def recorded(self, db: AsyncDatabase[Document], event: Event) -> None:
        p = event.payload
        await db["audit_events"].update_one(
            {"_id": str(p["id"])},
            {"$set": {**{k: v for k, v in p.items() if k != "id"}, "seq": int(p["id"])}},
            upsert=True,
        )
