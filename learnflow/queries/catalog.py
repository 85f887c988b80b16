"""Catalog queries: the course list (filters, search, three orders, keyset pages, a total on
the first page), an author's own courses, a course with its outline, and a lesson (enrolled
users and course staff; quiz answers only for staff)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from learnflow.context import Ctx, current_call
from learnflow.errors import FieldViolation, InvalidArgument, NotFound, PermissionDenied
from learnflow.projections.catalog import answers_by_question, search_fold
from learnflow.projections.learning import progress_id
from learnflow.projections.store import Document
from learnflow.queries.pagination import decode_token, encode_token, page_size
from learnflow.queries.read_models import ReadModels
from learnflow.v1 import courses_pb2, courses_pb2_grpc
from learnflow.values import parse_timestamp, require_uuid
from learnflow.vocabulary import (
    COURSE_LEVEL_NAMES,
    COURSE_STATES,
    ENROLLED_STATES,
    course_level,
    course_name,
    course_state,
    fill_lesson_content,
    is_course_staff,
    lesson_name,
)

MAX_QUERY = 200
SLUG = re.compile(r"[a-z0-9-]{1,100}")  # what course slugs are made of
MAX_TAGS = 10


@dataclass(frozen=True)
class Order:
    """One `order_by` of the catalog: the read model's keyset key and its direction."""

    key: str
    direction: int


# `order_by` as AIP-132 spells it (a field, then optionally " desc"), each with its keyset key.
CATALOG_ORDERS = {
    "": Order("sort_key", DESCENDING),
    "publish_time desc": Order("sort_key", DESCENDING),
    "title": Order("title_key", ASCENDING),
    "enrollment_count desc": Order("popularity_key", DESCENDING),
}
LIVE_STATES = sorted(COURSE_STATES)  # what an author's list shows: never a deleted course


def normalized_order_by(value: str) -> str:
    """`order_by` lowercased with single spaces and " asc" dropped (the default)."""
    words = value.strip().lower().split()
    if words[-1:] == ["asc"]:
        words = words[:-1]
    return " ".join(words)


def catalog_order(value: str) -> Order:
    order = CATALOG_ORDERS.get(normalized_order_by(value))
    if order is None:
        choices = ", ".join(repr(k) for k in CATALOG_ORDERS if k)
        raise InvalidArgument([FieldViolation("order_by", f"must be one of {choices}")])
    return order


def catalog_tags(tag: str, tags: list[str]) -> list[str]:
    """`tag` and `tags` together, lowercased, once each, in their order."""
    merged = [t.strip().lower() for t in ([tag] if tag else []) + list(tags)]
    if any(not t for t in merged):
        raise InvalidArgument([FieldViolation("tags", "must not contain an empty tag")])
    unique = list(dict.fromkeys(merged))
    if len(unique) > MAX_TAGS:
        raise InvalidArgument([FieldViolation("tags", f"at most {MAX_TAGS} tags")])
    return unique


def keyset(order: Order, after: str | int) -> dict[str, str]:
    """The filter of the page after the key `after` in `order`."""
    return {"$lt" if order.direction == DESCENDING else "$gt": str(after)}


def course_message(doc: Document) -> courses_pb2.Course:
    return courses_pb2.Course(
        id=doc["_id"],
        title=doc["title"],
        slug=doc["slug"],
        summary=doc["summary"],
        tags=list(doc["tags"]),
        level=course_level(doc["level"]),
        state=course_state(doc["state"]),
        capacity=doc["capacity"],
        enrollment_open_time=parse_timestamp(doc.get("enrollment_open_at")),
        enrollment_close_time=parse_timestamp(doc.get("enrollment_close_at")),
        owner_id=doc["owner_id"],
        instructor_name=doc["owner_name"],
        lesson_count=doc["lesson_count"],
        enrollment_count=doc["active_enrollment_count"],
        create_time=parse_timestamp(doc.get("created_at")),
        update_time=parse_timestamp(doc.get("updated_at")),
        publish_time=parse_timestamp(doc.get("published_at")),
    )


def lesson_message(doc: Document, answers: dict[str, list[int]] | None) -> courses_pb2.Lesson:
    message = courses_pb2.Lesson(
        id=doc["_id"],
        course_id=doc["course_id"],
        title=doc["title"],
        position=doc["position"],
        course_title=doc["course_title"],
        previous_lesson_id=doc["previous_lesson_id"],
        next_lesson_id=doc["next_lesson_id"],
    )
    # Only staff get the answers; they live in another collection.
    fill_lesson_content(message, doc["content_type"], doc["content"], answers or {})
    return message


async def visible_lesson(
    read_models: ReadModels, db: AsyncDatabase[Document], course_id: str, lesson_id: str
) -> tuple[Document, bool]:
    """The lesson if the caller may read it (enrolled or course staff), and whether the caller
    is staff. Lessons of courses the caller may not see are NOT_FOUND; of a visible course the
    caller has not enrolled in, PERMISSION_DENIED."""
    require_uuid(course_id, "course_id")
    require_uuid(lesson_id, "lesson_id")
    principal = current_call().principal
    lesson = await read_models.get(db, "lessons", lesson_id)
    if lesson is None or lesson.get("deleted") or lesson["course_id"] != course_id:
        raise NotFound("lesson", lesson_name(course_id, lesson_id))
    if is_course_staff(principal, lesson["owner_id"]):
        return lesson, True
    if principal is not None:
        progress = await read_models.get(
            db, "progress", progress_id(principal.user_text, course_id)
        )
        if progress is not None and progress["state"] in ENROLLED_STATES:
            return lesson, False
    course = await read_models.get(db, "courses", course_id)
    if course is None or course["state"] != "published":
        raise NotFound("lesson", lesson_name(course_id, lesson_id))
    raise PermissionDenied("enroll in the course to read its lessons")


def _course_reply(doc: Document) -> courses_pb2.GetCourseResponse:
    return courses_pb2.GetCourseResponse(course=course_message(doc), lessons=_outline(doc))


def _lesson_reply(lesson: Document) -> courses_pb2.GetLessonResponse:
    # The learner's view: no answers (staff get theirs built each time, above).
    return courses_pb2.GetLessonResponse(lesson=lesson_message(lesson, None))


def _visible(doc: Document | None) -> bool:
    """Published courses are anyone's; drafts and archived ones only their staff's; a deleted
    one's tombstone nobody's."""
    return (
        doc is not None
        and not doc.get("deleted")
        and (
            doc["state"] == "published"
            or is_course_staff(current_call().principal, doc["owner_id"])
        )
    )


def _outline(doc: Document) -> list[courses_pb2.LessonSummary]:
    return [
        courses_pb2.LessonSummary(
            id=e["id"], title=e["title"], position=e["position"], content_type=e["content_type"]
        )
        for e in doc.get("outline", [])
    ]


class CatalogQueries(courses_pb2_grpc.CatalogServiceServicer):
    def __init__(self, read_models: ReadModels) -> None:
        self.read_models = read_models

    async def ListCourses(
        self, request: courses_pb2.ListCoursesRequest, context: Ctx = None
    ) -> courses_pb2.ListCoursesResponse:
        size = page_size(request.page_size, 20)
        order = catalog_order(request.order_by)
        query: dict[str, Any] = {"state": "published"}
        tags = catalog_tags(request.tag, list(request.tags))
        if len(tags) == 1:
            query["tags"] = tags[0]
        elif tags:
            query["tags"] = {"$all": tags}
        if request.level:
            if request.level not in COURSE_LEVEL_NAMES:
                raise InvalidArgument([FieldViolation("level", "unknown level")])
            query["level"] = COURSE_LEVEL_NAMES[request.level]
        if len(request.q) > MAX_QUERY:
            raise InvalidArgument([FieldViolation("q", f"at most {MAX_QUERY} characters")])
        q = search_fold(request.q)
        if q:
            # A contained match (no text indexes on FerretDB 1.24): a range on the index's
            # last key, so MongoDB scans index keys, not documents; the input is literal.
            query["search_text"] = {"$regex": re.escape(q)}
        # The scope names everything that decides the page, so a token is refused elsewhere.
        scope = f"courses|{','.join(tags)}|{request.level}|{q}|{order.key}"
        after = decode_token(request.page_token, scope)
        db = await self.read_models.database()

        async def fetch() -> tuple[list[Document], int | None]:
            total = None
            if after is None:
                total = await db["courses"].count_documents(query)
            else:
                query[order.key] = keyset(order, after)
            docs = (
                await db["courses"]
                .find(query, {"outline": 0})
                .sort([(order.key, order.direction)])
                .limit(size + 1)
                .to_list()
            )
            return docs, total

        # On FerretDB every page reads, counts and sorts all published courses (hundreds of
        # ms at 400 of them), so pages go through the query cache. The reply is the same for
        # every caller (published courses only, nothing of the principal in it: the method
        # is public), so anonymous and signed-in callers share entries. The key is JSON (not
        # the scope, whose free-text parts could collide) of what decides the result: the
        # filters as normalised, the order, where the page starts and its size.
        key = json.dumps([tags, request.level, q, order.key, after, size], separators=(",", ":"))
        docs, total = await self.read_models.query(db, "courses", key, fetch)
        self.read_models.shareable(context)
        response = courses_pb2.ListCoursesResponse(
            courses=[course_message(doc) for doc in docs[:size]], total_size=total or 0
        )
        if len(docs) > size:
            response.next_page_token = encode_token(docs[size - 1][order.key], scope)
        return response

    async def ListAuthoredCourses(
        self, request: courses_pb2.ListAuthoredCoursesRequest, context: Ctx = None
    ) -> courses_pb2.ListAuthoredCoursesResponse:
        principal = current_call().principal
        if principal is None:  # the access rule admits instructors and admins only
            raise PermissionDenied("this method requires an authenticated caller")
        size = page_size(request.page_size, 20)
        query: dict[str, Any] = {}
        if not principal.is_admin:
            query["owner_id"] = principal.user_text
        if request.state:
            names = {value: name for name, value in COURSE_STATES.items()}
            if request.state not in names:
                raise InvalidArgument([FieldViolation("state", "unknown state")])
            query["state"] = names[request.state]
        else:
            query["state"] = {"$in": LIVE_STATES}
        scope = f"authored|{query.get('owner_id', '*')}|{request.state}"
        after = decode_token(request.page_token, scope)
        if after is not None:
            query["created_key"] = {"$lt": str(after)}
        db = await self.read_models.database()
        docs = (
            await db["courses"]
            .find(query, {"outline": 0})
            .sort([("created_key", DESCENDING)])
            .limit(size + 1)
            .to_list()
        )
        response = courses_pb2.ListAuthoredCoursesResponse(
            courses=[course_message(doc) for doc in docs[:size]]
        )
        if len(docs) > size:
            response.next_page_token = encode_token(docs[size - 1]["created_key"], scope)
        return response

    async def GetCourse(
        self, request: courses_pb2.GetCourseRequest, context: Ctx = None
    ) -> courses_pb2.GetCourseResponse:
        require_uuid(request.course_id, "course_id")
        db = await self.read_models.database()
        doc = await self.read_models.get(db, "courses", request.course_id)
        if not _visible(doc):
            raise NotFound("course", course_name(request.course_id))
        assert doc is not None
        self.read_models.shareable(context)
        return self.read_models.reply(doc, "GetCourse", _course_reply)

    async def GetCourseBySlug(
        self, request: courses_pb2.GetCourseBySlugRequest, context: Ctx = None
    ) -> courses_pb2.GetCourseBySlugResponse:
        slug = request.slug
        if not SLUG.fullmatch(slug):
            raise InvalidArgument(
                [FieldViolation("slug", "must be a course slug (1 to 100 of a-z, 0-9 and '-')")]
            )
        db = await self.read_models.database()
        doc = await db["courses"].find_one({"slug": slug})
        if not _visible(doc):
            raise NotFound("course", f"courses:bySlug/{slug}")
        assert doc is not None
        self.read_models.shareable(context)
        return courses_pb2.GetCourseBySlugResponse(
            course=course_message(doc), lessons=_outline(doc)
        )

    async def GetLesson(
        self, request: courses_pb2.GetLessonRequest, context: Ctx = None
    ) -> courses_pb2.GetLessonResponse:
        db = await self.read_models.database()
        lesson, staff = await visible_lesson(
            self.read_models, db, request.course_id, request.lesson_id
        )
        if staff and lesson["content_type"] == "quiz":
            doc = await self.read_models.get(db, "quiz_answers", lesson["_id"])
            answers = answers_by_question(doc["answers"]) if doc else None
            return courses_pb2.GetLessonResponse(lesson=lesson_message(lesson, answers))
        return self.read_models.reply(lesson, "GetLesson", _lesson_reply)
