"""Read models of learning: per (user, course) progress and each user's dashboard.

- `progress` (`_id` "<user_id>:<course_id>"): enrollment state, completed lessons, percent,
  best quiz scores, last activity; read by GetCourseProgress and WatchCourseProgress.
- `dashboards` (`_id` user id): the user's courses with their progress in one document, so the
  dashboard is one `_id` read; it is small (one entry per enrollment).
- `progress_courses` (`_id` course id): the course title and lesson count the progress
  documents repeat, to notice when they change and update the enrolled users' documents.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from learnflow.projections.base import Batch, Event, Projection, on, stale, utc_key
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
)


def progress_id(user_id: str, course_id: str) -> str:
    return f"{user_id}:{course_id}"


def percent(completed: int, lesson_count: int) -> int:
    return min(100, completed * 100 // lesson_count) if lesson_count > 0 else 0


def _touch(doc: Document, event: Event, activity_at: str | None = None) -> None:
    if activity_at:
        doc["last_activity_at"] = activity_at
        doc["activity_key"] = f"{utc_key(activity_at)}|{doc['course_id']}"
    doc["percent_complete"] = percent(len(doc["completed_lesson_ids"]), doc["lesson_count"])
    doc["v"] = event.version


class Progress(Projection):
    name = "progress"

    async def ensure_indexes(self, db: AsyncDatabase[Document]) -> None:
        await db["progress"].create_index([("course_id", ASCENDING)])
        await db["progress"].create_index([("user_id", ASCENDING)])

    async def _dashboard(self, batch: Batch, event: Event, progress: Document | None) -> None:
        """Copies the progress document into its user's dashboard (also on a replay, when the
        progress was written and the dashboard was not)."""
        if progress is None:
            return
        user_id = str(progress["user_id"])
        dashboard = await batch.get("dashboards", user_id)
        if stale(dashboard, event):
            return
        dashboard = dashboard if dashboard is not None else {"_id": user_id, "courses": {}}
        entry: dict[str, Any] = {name: progress.get(name) for name in ENTRY_FIELDS}
        dashboard["courses"][str(progress["course_id"])] = entry
        dashboard["v"] = event.version
        batch.put("dashboards", dashboard)

    @on(
        "course.created",
        "course.updated",
        "course.published",
        "course.archived",
        "course.counts_changed",
    )
    async def course_changed(self, batch: Batch, event: Event) -> None:
        p = event.payload
        meta = await batch.get("progress_courses", p["id"])
        if stale(meta, event):
            return
        if meta is not None and (meta["title"], meta["lesson_count"]) == (
            p["title"],
            p["lesson_count"],
        ):
            return
        enrolled = bool(meta and meta.get("has_enrollments"))
        batch.put(
            "progress_courses",
            {
                "_id": p["id"],
                "title": p["title"],
                "lesson_count": p["lesson_count"],
                "has_enrollments": enrolled,
                "v": event.version,
            },
        )
        if not enrolled:
            return
        for progress in await batch.find("progress", "course_id", p["id"]):
            if not stale(progress, event):
                progress["course_title"] = p["title"]
                progress["lesson_count"] = p["lesson_count"]
                _touch(progress, event)
                batch.put("progress", progress)
            await self._dashboard(batch, event, progress)

    @on("enrollment.activated", "enrollment.withdrawn", "enrollment.completed")
    async def enrollment_changed(self, batch: Batch, event: Event) -> None:
        p = event.payload
        doc_id = progress_id(p["user_id"], p["course_id"])
        progress = await batch.get("progress", doc_id)
        meta = await batch.get("progress_courses", p["course_id"])
        if meta is not None and not meta.get("has_enrollments") and not stale(meta, event):
            meta["has_enrollments"] = True
            meta["v"] = event.version
            batch.put("progress_courses", meta)
        if not stale(progress, event):
            if progress is None:
                progress = {
                    "_id": doc_id,
                    "user_id": p["user_id"],
                    "course_id": p["course_id"],
                    "completed_lesson_ids": [],
                    "quiz_best_scores": {},
                }
            progress.update(
                course_title=meta["title"] if meta else "",
                lesson_count=meta["lesson_count"] if meta else 0,
                state=p["state"],
                enrolled_at=p["enrolled_at"],
                completed_at=p["completed_at"],
            )
            _touch(progress, event, p["updated_at"])
            batch.put("progress", progress)
        await self._dashboard(batch, event, progress)

    @on("progress.lesson_completed")
    async def lesson_completed(self, batch: Batch, event: Event) -> None:
        p = event.payload
        progress = await batch.get("progress", progress_id(p["user_id"], p["course_id"]))
        if progress is not None and not stale(progress, event):
            progress["completed_lesson_ids"] = list(p["completed_lesson_ids"])
            progress["lesson_count"] = p["lesson_count"]
            _touch(progress, event, p["completed_at"])
            batch.put("progress", progress)
        await self._dashboard(batch, event, progress)

    @on("progress.quiz_attempted")
    async def quiz_attempted(self, batch: Batch, event: Event) -> None:
        p = event.payload
        progress = await batch.get("progress", progress_id(p["user_id"], p["course_id"]))
        if progress is not None and not stale(progress, event):
            progress["quiz_best_scores"] = {
                **progress.get("quiz_best_scores", {}),
                p["lesson_id"]: p["best_score"],
            }
            _touch(progress, event, p["attempted_at"])
            batch.put("progress", progress)
        await self._dashboard(batch, event, progress)

    @on("lesson.deleted")
    async def lesson_deleted(self, batch: Batch, event: Event) -> None:
        """PostgreSQL drops the lesson's completions with it; so do the progress documents."""
        p = event.payload
        meta = await batch.get("progress_courses", p["course_id"])
        if not (meta and meta.get("has_enrollments")):
            return
        for progress in await batch.find("progress", "course_id", p["course_id"]):
            if not stale(progress, event) and p["id"] in progress["completed_lesson_ids"]:
                progress["completed_lesson_ids"] = [
                    lesson for lesson in progress["completed_lesson_ids"] if lesson != p["id"]
                ]
                scores = dict(progress.get("quiz_best_scores", {}))
                scores.pop(p["id"], None)
                progress["quiz_best_scores"] = scores
                _touch(progress, event)
                batch.put("progress", progress)
            await self._dashboard(batch, event, progress)
