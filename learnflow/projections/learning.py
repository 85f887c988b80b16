"""Read models of learning: per (user, course) progress and each user's dashboard.

- `progress` (`_id` "<user_id>:<course_id>"): enrollment state, completed lessons, percent,
  best quiz scores, last activity, where to resume (`last_lesson_id`: the lesson last
  completed or attempted; `next_lesson_id`: the first lesson in outline order not completed)
  and the completion certificate's id; read by GetCourseProgress and WatchCourseProgress. Its
  enrollment fields follow the enrollment's events (`v`), its course fields (title, lesson
  count, which lessons exist) the course's events (`v_course`): two aggregates, two versions.
- `dashboards` (`_id` user id): the user's courses with their progress in one document, so the
  dashboard is one `_id` read; each entry is a copy of the progress document.
- `progress_courses` (`_id` course id): the course title, lesson count and lesson ids the
  progress documents depend on, to notice when they change and update the enrolled users.
- `progress_users` (`_id` user id): the user's display name, which every progress document of
  theirs carries (`display_name`, with its own version `v_user`) for the course roster, kept
  by the user events (a later profile change updates the user's progress documents).

The roster (ListCourseEnrollments) pages a course's progress documents by one of three keyset
keys, each ending in the user id so that no two learners share one: `name_key` (folded
display name), `percent_key` (zero-padded percent) and `roster_activity_key` (last activity).
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from learnflow.events import (
    CERTIFICATE_ISSUED,
    COURSE_EVENTS,
    ENROLLMENT_EVENTS,
    LESSON_COMPLETED,
    LESSON_CREATED,
    LESSON_DELETED,
    LESSON_UPDATED,
    QUIZ_ATTEMPTED,
    USER_EVENTS,
)
from learnflow.projections.base import Batch, Event, Projection, on, stale, utc_key
from learnflow.projections.catalog import search_fold
from learnflow.projections.store import Document

ENTRY_FIELDS = (
    "course_id",
    "course_title",
    "state",
    "enrolled_at",
    "completed_at",
    "completed_lesson_ids",
    "lesson_count",
    "percent_complete",
    "quiz_best_scores",
    "last_activity_at",
    "activity_key",
    "last_lesson_id",
    "next_lesson_id",
    "certificate_id",
    "v",
    "v_course",
)


def progress_id(user_id: str, course_id: str) -> str:
    return f"{user_id}:{course_id}"


def percent(completed: int, lesson_count: int) -> int:
    return min(100, completed * 100 // lesson_count) if lesson_count > 0 else 0


def _recompute(doc: Document, lesson_ids: list[str] | None) -> None:
    """Completed lessons limited to the lessons that exist, the percent, and where to resume:
    the next lesson is the first of the outline not completed (none when all are)."""
    if lesson_ids is not None:
        existing = set(lesson_ids)
        doc["completed_lesson_ids"] = [
            lesson for lesson in doc["completed_lesson_ids"] if lesson in existing
        ]
        scores = doc.get("quiz_best_scores") or {}
        doc["quiz_best_scores"] = {k: v for k, v in scores.items() if k in existing}
        if doc.get("last_lesson_id") not in existing:
            doc["last_lesson_id"] = ""
        done = set(doc["completed_lesson_ids"])
        doc["next_lesson_id"] = next((i for i in lesson_ids if i not in done), "")
    doc["percent_complete"] = percent(len(doc["completed_lesson_ids"]), doc["lesson_count"])
    doc["percent_key"] = f"{doc['percent_complete']:03d}|{doc['user_id']}"


def _activity(doc: Document, at: str) -> None:
    doc["last_activity_at"] = at
    doc["activity_key"] = f"{utc_key(at)}|{doc['course_id']}"
    doc["roster_activity_key"] = f"{utc_key(at)}|{doc['user_id']}"


def _name(doc: Document, display_name: str) -> None:
    doc["display_name"] = display_name
    doc["name_key"] = f"{search_fold(display_name)}|{doc['user_id']}"


class Progress(Projection):
    name = "progress"

    async def ensure_indexes(self, db: AsyncDatabase[Document]) -> None:
        await db["progress"].create_index([("course_id", ASCENDING)])
        await db["progress"].create_index([("user_id", ASCENDING)])
        # The roster's three orders (ascending indexes serve both directions).
        for key in ("name_key", "percent_key", "roster_activity_key"):
            await db["progress"].create_index([("course_id", ASCENDING), (key, ASCENDING)])

    async def _dashboard(self, batch: Batch, progress: Document | None) -> None:
        """Copies the progress document into its user's dashboard (also on a replay, when the
        progress was written and the dashboard was not)."""
        if progress is None:
            return
        user_id = str(progress["user_id"])
        dashboard = await batch.get("dashboards", user_id)
        dashboard = dashboard if dashboard is not None else {"_id": user_id, "courses": {}}
        entry: dict[str, Any] = {name: progress.get(name) for name in ENTRY_FIELDS}
        if dashboard["courses"].get(str(progress["course_id"])) != entry:
            dashboard["courses"][str(progress["course_id"])] = entry
            batch.put("dashboards", dashboard)

    async def _course_facts(self, batch: Batch, event: Event, **facts: Any) -> None:
        """Course-side facts changed: record them, update every enrolled user's progress."""
        course_id = str(event.payload["course_id" if "course_id" in event.payload else "id"])
        meta = await batch.get("progress_courses", course_id)
        if stale(meta, event):
            return
        meta = meta if meta is not None else {"_id": course_id, "has_enrollments": False}
        if all(meta.get(k) == v for k, v in facts.items()):
            return
        meta.update(facts)
        meta.setdefault("title", "")
        meta.setdefault("lesson_count", 0)
        meta.setdefault("lesson_ids", [])
        meta["v"] = event.version
        batch.put("progress_courses", meta)
        if not meta["has_enrollments"]:
            return
        for progress in await batch.find("progress", "course_id", course_id):
            if not stale(progress, event, "v_course"):
                progress["course_title"] = meta["title"]
                progress["lesson_count"] = meta["lesson_count"]
                progress["v_course"] = event.version
                _recompute(progress, meta["lesson_ids"])
                batch.put("progress", progress)
            await self._dashboard(batch, progress)

    @on(*USER_EVENTS)
    async def user_changed(self, batch: Batch, event: Event) -> None:
        """A user's display name, recorded and copied into each of their progress documents
        when it changes (registration carries it; so will every later profile change)."""
        p = event.payload
        user_id = str(p["id"])
        meta = await batch.get("progress_users", user_id)
        if stale(meta, event):
            return
        batch.put(
            "progress_users",
            {"_id": user_id, "display_name": p["display_name"], "v": event.version},
        )
        # A user's first event is their registration, committed before any enrollment of
        # theirs: no progress document to look for (and no scan per new user).
        if meta is None or meta.get("display_name") == p["display_name"]:
            return
        for progress in await batch.find("progress", "user_id", user_id):
            if not stale(progress, event, "v_user"):
                _name(progress, p["display_name"])
                progress["v_user"] = event.version
                batch.put("progress", progress)

    @on(*COURSE_EVENTS)
    async def course_changed(self, batch: Batch, event: Event) -> None:
        p = event.payload
        await self._course_facts(batch, event, title=p["title"], lesson_count=p["lesson_count"])

    @on(LESSON_CREATED, LESSON_UPDATED, LESSON_DELETED)
    async def outline_changed(self, batch: Batch, event: Event) -> None:
        """PostgreSQL drops a deleted lesson's completions with it; so does the read model."""
        lesson_ids = [str(e["id"]) for e in event.payload["outline"]]
        await self._course_facts(batch, event, lesson_ids=lesson_ids)

    @on(*ENROLLMENT_EVENTS)
    async def enrollment_changed(self, batch: Batch, event: Event) -> None:
        p = event.payload
        doc_id = progress_id(p["user_id"], p["course_id"])
        progress = await batch.get("progress", doc_id)
        meta = await batch.get("progress_courses", p["course_id"])
        if meta is not None and not meta.get("has_enrollments"):
            meta["has_enrollments"] = True  # a flag, never cleared: no version needed
            batch.put("progress_courses", meta)
        if not stale(progress, event):
            if progress is None:
                user = await batch.get("progress_users", p["user_id"])
                progress = {
                    "_id": doc_id,
                    "user_id": p["user_id"],
                    "course_id": p["course_id"],
                    "completed_lesson_ids": [],
                    "quiz_best_scores": {},
                    "course_title": meta["title"] if meta else "",
                    "lesson_count": meta["lesson_count"] if meta else 0,
                    "v_course": meta["v"] if meta else 0,
                    "v_user": user["v"] if user else 0,
                }
                _name(progress, user["display_name"] if user else "")
            progress.update(
                state=p["state"], enrolled_at=p["enrolled_at"], completed_at=p["completed_at"]
            )
            _activity(progress, p["updated_at"])
            progress["v"] = event.version
            _recompute(progress, meta["lesson_ids"] if meta else None)
            batch.put("progress", progress)
        await self._dashboard(batch, progress)

    @on(LESSON_COMPLETED)
    async def lesson_completed(self, batch: Batch, event: Event) -> None:
        p = event.payload
        progress = await batch.get("progress", progress_id(p["user_id"], p["course_id"]))
        if progress is not None and not stale(progress, event):
            meta = await batch.get("progress_courses", p["course_id"])
            progress["completed_lesson_ids"] = list(p["completed_lesson_ids"])
            progress["last_lesson_id"] = p["lesson_id"]
            _activity(progress, p["completed_at"])
            progress["v"] = event.version
            _recompute(progress, meta["lesson_ids"] if meta else None)
            batch.put("progress", progress)
        await self._dashboard(batch, progress)

    @on(QUIZ_ATTEMPTED)
    async def quiz_attempted(self, batch: Batch, event: Event) -> None:
        p = event.payload
        progress = await batch.get("progress", progress_id(p["user_id"], p["course_id"]))
        if progress is not None and not stale(progress, event):
            progress["quiz_best_scores"] = {
                **(progress.get("quiz_best_scores") or {}),
                p["lesson_id"]: p["best_score"],
            }
            progress["last_lesson_id"] = p["lesson_id"]
            _activity(progress, p["attempted_at"])
            progress["v"] = event.version
            batch.put("progress", progress)
        await self._dashboard(batch, progress)

    @on(CERTIFICATE_ISSUED)
    async def certificate_issued(self, batch: Batch, event: Event) -> None:
        p = event.payload
        progress = await batch.get("progress", progress_id(p["user_id"], p["course_id"]))
        if progress is not None and not stale(progress, event):
            progress["certificate_id"] = p["id"]
            progress["v"] = event.version
            batch.put("progress", progress)
        await self._dashboard(batch, progress)
