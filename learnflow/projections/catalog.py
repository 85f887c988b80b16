"""Read models of the catalog: courses (catalog entry + outline), lessons, quiz answers.

- `courses`: one document per course with everything the catalog and the course page show
  (instructor name, lesson and enrollment counts, the outline), plus `search_text` (title,
  summary and tags, lowercase with accents folded: `search_fold`) for the search, and the
  keyset keys of each order: `sort_key` (publication time, id) newest first, `title_key`
  (folded title, id) by title, `popularity_key` (active enrollments, publication) most
  popular first, `created_key` (creation time, id) for the authors' own list. A deleted course
  stays as a tombstone (`deleted: true`, `state: "deleted"`, which no query asks for), so that
  late or replayed events of it cannot bring it back.
- `lessons`: one per lesson with its course title, owner (for the staff check), position and
  previous/next lesson ids; quiz content *without* the correct answers. A deleted lesson stays
  as a tombstone (`deleted: true`) so that late writes cannot bring it back.
- `quiz_answers`: the correct answers per quiz lesson, read only for course staff.
"""

from __future__ import annotations

import copy
import unicodedata
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from learnflow.events import (
    COURSE_DELETED,
    COURSE_EVENTS,
    LESSON_CREATED,
    LESSON_DELETED,
    LESSON_UPDATED,
)
from learnflow.projections.base import Batch, Event, Projection, on, stale, utc_key
from learnflow.projections.store import Document

COURSE_FIELDS = (
    "owner_id",
    "owner_name",
    "title",
    "slug",
    "summary",
    "tags",
    "level",
    "state",
    "capacity",
    "enrollment_open_at",
    "enrollment_close_at",
    "lesson_count",
    "active_enrollment_count",
    "created_at",
    "updated_at",
    "published_at",
)


# What a tombstone's `state` says; never a state of the contract, so no query matches it.
DELETED_STATE = "deleted"
# Wide enough for any count; fixed width so that the strings sort like the numbers.
COUNT_WIDTH = 10


def search_fold(text: str) -> str:
    """`text` as the search compares it: lowercase (casefold), accents and other combining
    marks dropped (NFKD), whitespace runs made one space. Applied both to the read model's
    `search_text` and to the query, so "Ünicode", "unicode" and "UNICODE" all match."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(unicodedata.normalize("NFC", bare).split())


def search_text(title: str, summary: str, tags: list[str]) -> str:
    return search_fold(" ".join([title, summary, *tags]))


def course_keys(p: Any) -> dict[str, str]:
    """The keyset keys of a course (see the module docstring); each ends with something
    unique, so no two courses share one."""
    published = utc_key(p["published_at"])
    sort_key = f"{published}|{p['id']}" if published else ""
    return {
        "sort_key": sort_key,
        "title_key": f"{search_fold(p['title'])}|{p['id']}",
        "popularity_key": (
            f"{int(p['active_enrollment_count']):0{COUNT_WIDTH}d}|{sort_key or p['id']}"
        ),
        "created_key": f"{utc_key(p['created_at'])}|{p['id']}",
    }


def split_answers(
    content_type: str, content: dict[str, Any]
) -> tuple[dict[str, Any], list[Document] | None]:
    """The content students see, and the answers (quizzes only) as `[{id, correct}]`: an
    array, never a map keyed by question id, because those ids are the instructor's input and
    no input may become a document key (a `.` or `$` in a key is refused by the store)."""
    if content_type != "quiz":
        return copy.deepcopy(content), None
    public = copy.deepcopy(content)
    answers: list[Document] = []
    for question in public.get("questions", []):
        correct = list(question.pop("correct_choice_indexes", []))
        answers.append({"id": str(question["id"]), "correct": correct})
    return public, answers


def answers_by_question(stored: list[Document] | dict[str, list[int]]) -> dict[str, list[int]]:
    """The answers of a `quiz_answers` document by question id (documents written before
    answers became an array hold a map: read both until the next rebuild)."""
    if isinstance(stored, dict):
        return {str(k): list(v) for k, v in stored.items()}
    return {str(entry["id"]): list(entry["correct"]) for entry in stored}


def neighbours(outline: list[dict[str, Any]], lesson_id: str) -> tuple[int, str, str]:
    """(position, previous id, next id) of `lesson_id` in `outline`."""
    ids = [str(entry["id"]) for entry in outline]
    if lesson_id not in ids:
        return 0, "", ""
    index = ids.index(lesson_id)
    previous = ids[index - 1] if index > 0 else ""
    following = ids[index + 1] if index + 1 < len(ids) else ""
    return int(outline[index]["position"]), previous, following


class Catalog(Projection):
    name = "catalog"

    async def ensure_indexes(self, db: AsyncDatabase[Document]) -> None:
        courses = db["courses"]
        # ListCourses: equality filters (state, and tags and/or level; several tags are an
        # `$all`, whose index bounds are an equality on one of them), then the sort of the
        # order asked for, then the search (a range on index keys): MongoDB's
        # equality-sort-range order, so every filter combination and order is served by one of
        # these; the first page's total (a count: no sort) by the last one of each filter
        # combination. tests/index_coverage.py checks it.
        for filters in ([], ["tags"], ["level"], ["tags", "level"]):
            equalities = [("state", ASCENDING), *((field, ASCENDING) for field in filters)]
            for sort in (("sort_key", DESCENDING), ("title_key", ASCENDING)):
                await courses.create_index([*equalities, sort, ("search_text", ASCENDING)])
            await courses.create_index(
                [*equalities, ("popularity_key", DESCENDING), ("search_text", ASCENDING)]
            )
            await courses.create_index([*equalities, ("search_text", ASCENDING)])
        # ListAuthoredCourses: an author's courses (state by equality or `$in` of every live
        # state), newest first; an admin's (every author) by state alone.
        await courses.create_index(
            [("owner_id", ASCENDING), ("state", ASCENDING), ("created_key", DESCENDING)]
        )
        await courses.create_index([("state", ASCENDING), ("created_key", DESCENDING)])
        await courses.create_index([("slug", ASCENDING)])  # GetCourseBySlug
        await db["lessons"].create_index([("course_id", ASCENDING), ("position", ASCENDING)])

    @on(*COURSE_EVENTS)
    async def course_changed(self, batch: Batch, event: Event) -> None:
        p = event.payload
        doc = await batch.get("courses", p["id"])
        if stale(doc, event):
            return
        previous_title = doc["title"] if doc else None
        doc = doc if doc is not None else {"_id": p["id"], "outline": []}
        doc.update({name: copy.deepcopy(p[name]) for name in COURSE_FIELDS})
        doc.pop("title_lower", None)  # the title-only search of earlier versions
        doc["search_text"] = search_text(p["title"], p["summary"], p["tags"])
        doc.update(course_keys(p))
        doc["deleted"] = False
        doc["v"] = event.version
        batch.put("courses", doc)
        if previous_title is not None and previous_title != p["title"]:
            for lesson in await batch.find("lessons", "course_id", p["id"]):
                if not stale(lesson, event):
                    lesson["course_title"] = p["title"]
                    lesson["v"] = event.version
                    batch.put("lessons", lesson)

    @on(COURSE_DELETED)
    async def course_deleted(self, batch: Batch, event: Event) -> None:
        """The course becomes a tombstone its author's list and the catalog never match, and
        so do its lessons (and their answers)."""
        p = event.payload
        doc = await batch.get("courses", p["id"])
        if not stale(doc, event):
            batch.put(
                "courses",
                {
                    "_id": p["id"],
                    "owner_id": p["owner_id"],
                    "state": DELETED_STATE,
                    "deleted": True,
                    "deleted_at": p["deleted_at"],
                    "v": event.version,
                },
            )
        for lesson_id in p["lesson_ids"]:
            for collection in ("lessons", "quiz_answers"):
                lesson = await batch.get(collection, lesson_id)
                if lesson is not None and not stale(lesson, event):
                    batch.put(
                        collection,
                        {
                            "_id": lesson_id,
                            "course_id": p["id"],
                            "deleted": True,
                            "v": event.version,
                        },
                    )

    @on(LESSON_CREATED, LESSON_UPDATED)
    async def lesson_changed(self, batch: Batch, event: Event) -> None:
        p = event.payload
        doc = await batch.get("lessons", p["id"])
        if not stale(doc, event):
            course = await batch.get("courses", p["course_id"])
            content, _ = split_answers(p["content_type"], p["content"])
            position, previous, following = neighbours(p["outline"], p["id"])
            batch.put(
                "lessons",
                {
                    "_id": p["id"],
                    "course_id": p["course_id"],
                    "course_title": p["course_title"],
                    "owner_id": course["owner_id"] if course else "",
                    "title": p["title"],
                    "position": position or p["position"],
                    "content_type": p["content_type"],
                    "content": content,
                    "previous_lesson_id": previous,
                    "next_lesson_id": following,
                    "created_at": p["created_at"],
                    "updated_at": p["updated_at"],
                    "deleted": False,
                    "v": event.version,
                },
            )
        answers_doc = await batch.get("quiz_answers", p["id"])
        _, answers = split_answers(p["content_type"], p["content"])
        if (answers is not None or answers_doc is not None) and not stale(answers_doc, event):
            batch.put(
                "quiz_answers",
                {
                    "_id": p["id"],
                    "course_id": p["course_id"],
                    "answers": answers or [],
                    "v": event.version,
                },
            )
        await self._outline(batch, event, p["course_id"], p["outline"])

    @on(LESSON_DELETED)
    async def lesson_deleted(self, batch: Batch, event: Event) -> None:
        p = event.payload
        for collection in ("lessons", "quiz_answers"):
            doc = await batch.get(collection, p["id"])
            if doc is not None and not stale(doc, event):
                batch.put(
                    collection,
                    {
                        "_id": p["id"],
                        "course_id": p["course_id"],
                        "deleted": True,
                        "v": event.version,
                    },
                )
        await self._outline(batch, event, p["course_id"], p["outline"])

    async def _outline(
        self, batch: Batch, event: Event, course_id: str, outline: list[dict[str, Any]]
    ) -> None:
        """Every lesson's position and neighbours, and the course's outline, after a change."""
        course = await batch.get("courses", course_id)
        if course is not None and not stale(course, event):
            course["outline"] = [
                {
                    "id": str(e["id"]),
                    "title": e["title"],
                    "position": int(e["position"]),
                    "content_type": e["content_type"],
                }
                for e in outline
            ]
            course["v"] = event.version
            batch.put("courses", course)
        for entry in outline:
            lesson = await batch.get("lessons", str(entry["id"]))
            if lesson is None or stale(lesson, event):
                continue
            position, previous, following = neighbours(outline, str(entry["id"]))
            if (
                lesson["position"],
                lesson["title"],
                lesson["previous_lesson_id"],
                lesson["next_lesson_id"],
            ) == (position, entry["title"], previous, following):
                continue
            lesson.update(
                position=position,
                title=entry["title"],
                previous_lesson_id=previous,
                next_lesson_id=following,
                v=event.version,
            )
            batch.put("lessons", lesson)
