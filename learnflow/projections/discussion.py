"""Read model of discussions: comment threads per lesson.

`comments` holds one document per comment with `sort_key` = thread key (the top-level
comment's creation time and id) then the comment's own place in its thread, so one indexed
`find({lesson_id}).sort(sort_key)` lists a lesson's threads oldest first, each followed by
its replies (replies of replies included) in the order they were written.
"""

from __future__ import annotations

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from learnflow.events import COMMENT_EVENTS
from learnflow.projections.base import Batch, Event, Projection, on, stale, utc_key
from learnflow.projections.store import Document


class Discussion(Projection):
    name = "discussion"

    async def ensure_indexes(self, db: AsyncDatabase[Document]) -> None:
        await db["comments"].create_index([("lesson_id", ASCENDING), ("sort_key", ASCENDING)])

    @on(*COMMENT_EVENTS)
    async def comment_changed(self, batch: Batch, event: Event) -> None:
        p = event.payload
        doc = await batch.get("comments", p["id"])
        if stale(doc, event):
            return
        created = utc_key(p["created_at"])
        if doc is not None:
            thread = str(doc["thread"])
        elif p["parent_id"]:
            parent = await batch.get("comments", p["parent_id"])
            thread = str(parent["thread"]) if parent else f"{created}|{p['parent_id']}"
        else:
            thread = f"{created}|{p['id']}"
        own = "0" if not p["parent_id"] else f"1|{created}|{p['id']}"
        batch.put(
            "comments",
            {
                "_id": p["id"],
                "course_id": p["course_id"],
                "lesson_id": p["lesson_id"],
                "parent_id": p["parent_id"],
                "author_id": p["author_id"],
                "author_name": p["author_name"],
                "body": p["body"],
                "deleted": p["deleted"],
                "created_at": p["created_at"],
                "updated_at": p["updated_at"],
                "thread": thread,
                "sort_key": f"{thread}|{own}",
                "v": event.version,
            },
        )
