"""Course rows as the course, learning and discussion commands use them: loading a course
(with the caller's right to see it) or a lesson, the course row locks, and the course's
message and event payload."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from learnflow.context import Principal
from learnflow.errors import NotFound
from learnflow.events import CoursePayload, LessonPayload, OutlineEntry
from learnflow.storage import tables
from learnflow.v1 import courses_pb2
from learnflow.values import iso, timestamp
from learnflow.vocabulary import (
    answers_in,
    course_level,
    course_name,
    course_state,
    fill_lesson_content,
    is_course_staff,
    lesson_name,
)

# The course row statements are built once: building the locking SELECT with the expression
# language cost about a millisecond of CPU per call, which commands spent holding the lock of
# the previous one's row. `course_key` (not `id`, a column name) is the course's id.
_OWNER_NAME = tables.users.c.display_name.label("owner_name")
_COURSE = (
    select(tables.courses, _OWNER_NAME)
    .join(tables.users, tables.users.c.id == tables.courses.c.owner_id)
    .where(tables.courses.c.id == bindparam("course_key"))
)
_COURSE_LOCKED = _COURSE.with_for_update(of=tables.courses)
_UPDATE = (
    update(tables.courses)
    .where(
        tables.courses.c.id == bindparam("course_key"),
        tables.users.c.id == tables.courses.c.owner_id,
    )
    .returning(*tables.courses.c, _OWNER_NAME)
)


async def load_course(
    conn: AsyncConnection,
    course_id: uuid.UUID,
    principal: Principal,
    *,
    lock: bool = False,
) -> Any:
    """The course row with its owner's display name as `owner_name`.

    NOT_FOUND both when it does not exist and when it is a draft the caller may not see, so
    that nobody learns of other people's drafts by probing ids. `lock` takes the course row
    `FOR UPDATE`: the lock that serialises lesson positions and enrollment counts.
    """
    query = _COURSE_LOCKED if lock else _COURSE
    course = (await conn.execute(query, {"course_key": course_id})).first()
    if course is None or (
        course.state == "draft" and not is_course_staff(principal, course.owner_id)
    ):
        raise NotFound("course", course_name(course_id))
    return course


async def lock_course_row(conn: AsyncConnection, course_id: uuid.UUID) -> None:
    # NO KEY UPDATE: the caller already holds a KEY SHARE lock on the row (foreign key of the
    # completion it inserted); FOR UPDATE would conflict with other completers' KEY SHARE and
    # two learners finishing the course at once deadlock. It still excludes lesson edits.
    await conn.execute(
        select(tables.courses.c.id)
        .where(tables.courses.c.id == course_id)
        .with_for_update(key_share=True)  # FOR NO KEY UPDATE
    )


async def reload_course(conn: AsyncConnection, course_id: uuid.UUID) -> Any:
    return (await conn.execute(_COURSE, {"course_key": course_id})).one()


async def update_course_as_seen(conn: AsyncConnection, seen: Any, **values: Any) -> Any:
    """`update_course` with `values` (plain data) and `updated_at = now()`, only while the row
    still has what the caller's checks read from `seen` (an unlocked read): the same owner and
    state, the same enrollment window, and (when the values set a capacity) no more active
    enrollments than it allows. None, with nothing changed, when it has not: the caller then
    takes the row lock and checks again.

    The UPDATE takes the row lock itself, and PostgreSQL evaluates these conditions on the
    row as it is once the lock is granted (READ COMMITTED re-checks a row another transaction
    changed meanwhile), so checks made without the lock still hold for the row written; the
    lock is held from the UPDATE to COMMIT only, one statement less than `load_course(lock=
    True)` + `update_course`."""
    capacity = values.get("capacity")
    params = {f"new_{name}": value for name, value in values.items()}
    params.update(
        course_key=seen.id,
        seen_owner=seen.owner_id,
        seen_state=seen.state,
        seen_open=seen.enrollment_open_at,
        seen_close=seen.enrollment_close_at,
        most_enrolled=capacity or 0,
    )
    statement = _guarded_update(tuple(sorted(values)), bool(capacity))
    return (await conn.execute(statement, params)).first()


# Built once per set of changed fields (at most every subset of the course's fields): building
# and keying the statement cost 165 us a call, on every UpdateCourse.
_GUARDED_UPDATES: dict[tuple[tuple[str, ...], bool], Any] = {}


def _guarded_update(names: tuple[str, ...], capacity_guard: bool) -> Any:
    found = _GUARDED_UPDATES.get((names, capacity_guard))
    if found is not None:
        return found
    courses = tables.courses.c
    changes: dict[str, Any] = {name: bindparam(f"new_{name}") for name in names}
    statement = _UPDATE.values({**changes, "updated_at": func.now()}).where(
        courses.owner_id == bindparam("seen_owner"),
        courses.state == bindparam("seen_state"),
        courses.enrollment_open_at.is_not_distinct_from(bindparam("seen_open")),
        courses.enrollment_close_at.is_not_distinct_from(bindparam("seen_close")),
    )
    if capacity_guard:  # a capacity of 0 is unlimited: nothing to hold then
        statement = statement.where(courses.active_enrollment_count <= bindparam("most_enrolled"))
    if len(_GUARDED_UPDATES) < 4096:
        _GUARDED_UPDATES[(names, capacity_guard)] = statement
    return statement


async def update_course(conn: AsyncConnection, course_id: uuid.UUID, **values: Any) -> Any:
    """Change the course row and return it as `reload_course` does (with `owner_name`): one
    round trip instead of two, while the caller holds the row lock."""
    return (await conn.execute(_UPDATE.values(**values), {"course_key": course_id})).one()


def course_payload(course: Any) -> CoursePayload:
    return {
        "id": str(course.id),
        "owner_id": str(course.owner_id),
        "owner_name": course.owner_name,
        "title": course.title,
        "slug": course.slug,
        "summary": course.summary,
        "tags": list(course.tags),
        "level": course.level,
        "state": course.state,
        "capacity": course.capacity,
        "enrollment_open_at": iso(course.enrollment_open_at),
        "enrollment_close_at": iso(course.enrollment_close_at),
        "lesson_count": course.lesson_count,
        "active_enrollment_count": course.active_enrollment_count,
        "created_at": course.created_at.isoformat(),
        "updated_at": course.updated_at.isoformat(),
        "published_at": iso(course.published_at),
    }


def course_message(course: Any) -> courses_pb2.Course:
    return courses_pb2.Course(
        id=str(course.id),
        title=course.title,
        slug=course.slug,
        summary=course.summary,
        tags=list(course.tags),
        level=course_level(course.level),
        state=course_state(course.state),
        capacity=course.capacity,
        enrollment_open_time=timestamp(course.enrollment_open_at),
        enrollment_close_time=timestamp(course.enrollment_close_at),
        owner_id=str(course.owner_id),
        instructor_name=course.owner_name,
        lesson_count=course.lesson_count,
        enrollment_count=course.active_enrollment_count,
        create_time=timestamp(course.created_at),
        update_time=timestamp(course.updated_at),
        publish_time=timestamp(course.published_at),
    )


async def load_lesson(conn: AsyncConnection, course_id: uuid.UUID, lesson_id: uuid.UUID) -> Any:
    """The lesson of that course, or NOT_FOUND (a lesson id under another course is none)."""
    lesson = (
        await conn.execute(
            select(tables.lessons).where(
                tables.lessons.c.id == lesson_id, tables.lessons.c.course_id == course_id
            )
        )
    ).first()
    if lesson is None:
        raise NotFound("lesson", lesson_name(course_id, lesson_id))
    return lesson


def lesson_message(
    lesson: Any, course_title: str, outline: list[OutlineEntry]
) -> courses_pb2.Lesson:
    message = courses_pb2.Lesson(
        id=str(lesson.id),
        course_id=str(lesson.course_id),
        title=lesson.title,
        position=lesson.position,
        course_title=course_title,
    )
    fill_lesson_content(message, lesson.content_type, lesson.content, answers_in(lesson.content))
    index = lesson.position - 1  # positions are dense: outline[index] is this lesson
    if 1 <= index <= len(outline):
        message.previous_lesson_id = outline[index - 1]["id"]
    if 0 <= index + 1 < len(outline):
        message.next_lesson_id = outline[index + 1]["id"]
    return message


def lesson_payload(lesson: Any, course_title: str, outline: list[OutlineEntry]) -> LessonPayload:
    return {
        "id": str(lesson.id),
        "course_id": str(lesson.course_id),
        "course_title": course_title,
        "title": lesson.title,
        "position": lesson.position,
        "content_type": lesson.content_type,
        "content": dict(lesson.content),
        "created_at": lesson.created_at.isoformat(),
        "updated_at": lesson.updated_at.isoformat(),
        "outline": outline,
    }


async def course_outline(conn: AsyncConnection, course_id: uuid.UUID) -> list[OutlineEntry]:
    rows = await conn.execute(
        select(
            tables.lessons.c.id,
            tables.lessons.c.title,
            tables.lessons.c.position,
            tables.lessons.c.content_type,
        )
        .where(tables.lessons.c.course_id == course_id)
        .order_by(tables.lessons.c.position)
    )
    return [
        {
            "id": str(row.id),
            "title": row.title,
            "position": row.position,
            "content_type": row.content_type,
        }
        for row in rows
    ]
