"""Read models of accounts: user profiles (with the admins' directory search) and the admins'
audit trail.

Directory search (ListUsers) is one range on `search_terms`, an array holding the email and
every tail of the normalised display name's words ("ada king lovelace", "king lovelace",
"lovelace"), so that an anchored prefix match finds a user by the start of their email, of
their name or of any word of it. Normalised: NFKD, accents dropped, case-folded, whitespace
collapsed; the query is normalised the same way. No text index, no `$or`: MongoDB and
FerretDB 1.24 both match a regex against the elements of an array.
"""

from __future__ import annotations

import unicodedata

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from learnflow.events import AUDIT_RECORDED, USER_EVENTS
from learnflow.projections.base import Batch, Event, Projection, on, stale
from learnflow.projections.store import Document

MAX_NAME_WORDS = 12


def normalise_search(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(plain.casefold().split())


def search_terms(email: str, display_name: str) -> list[str]:
    words = normalise_search(display_name).split()[:MAX_NAME_WORDS]
    terms = [email.lower()] + [" ".join(words[i:]) for i in range(len(words))]
    return list(dict.fromkeys(terms))


class UserProfiles(Projection):
    name = "users"

    async def ensure_indexes(self, db: AsyncDatabase[Document]) -> None:
        users = db["users"]
        await users.create_index([("email", ASCENDING)], unique=True)
        # ListUsers: equality filters (role and/or disabled), the sort (email), then the search
        # (a range): equality-sort-range, one index per filter combination.
        for filters in ([], ["role"], ["disabled"], ["role", "disabled"]):
            await users.create_index(
                [
                    *((field, ASCENDING) for field in filters),
                    ("email", ASCENDING),
                    ("search_terms", ASCENDING),
                ]
            )

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
                "bio": p.get("bio", ""),
                "avatar_url": p.get("avatar_url", ""),
                "email_verified": p.get("email_verified", False),
                "search_terms": search_terms(p["email"], p["display_name"]),
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
        # The admin's "events about this user/course" view.
        await db["audit_events"].create_index([("resource", ASCENDING), ("seq", DESCENDING)])
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
