"""What the course, learning and discussion commands share: the caller, loading a course
with the caller's right to see it, and the course's message and event payload."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from learnflow.commands import tables
from learnflow.context import Principal, current_call
from learnflow.errors import FieldViolation, InvalidArgument, NotFound, PermissionDenied
from learnflow.events import CoursePayload
from learnflow.v1 import courses_pb2
from learnflow.values import parse_uuid, timestamp

LEVEL_NAMES = {
    courses_pb2.COURSE_LEVEL_UNSPECIFIED: "unspecified",
    courses_pb2.COURSE_LEVEL_BEGINNER: "beginner",
    courses_pb2.COURSE_LEVEL_INTERMEDIATE: "intermediate",
    courses_pb2.COURSE_LEVEL_ADVANCED: "advanced",
}
LEVEL_VALUES = {name: value for value, name in LEVEL_NAMES.items()}
STATE_VALUES = {
    "draft": courses_pb2.COURSE_STATE_DRAFT,
    "published": courses_pb2.COURSE_STATE_PUBLISHED,
    "archived": courses_pb2.COURSE_STATE_ARCHIVED,
}


def caller() -> Principal:
    principal = current_call().principal
    if principal is None:  # the interceptor refuses anonymous calls to these methods
        raise PermissionDenied("this method requires an authenticated caller")
    return principal


def parse_ids(*fields: tuple[str, str]) -> list[uuid.UUID]:
    """Parse several `(field name, value)` UUIDs, reporting every bad one at once."""
    violations: list[FieldViolation] = []
    parsed: list[uuid.UUID] = []
    for field, value in fields:
        try:
            parsed.append(parse_uuid(value, field))
        except InvalidArgument as error:
            violations.extend(error.violations)
    if violations:
        raise InvalidArgument(violations)
    return parsed


def iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def is_staff(course: Any, principal: Principal) -> bool:
    """Course staff: its owner and every admin."""
    return principal.is_admin or course.owner_id == principal.user_id


def course_name(course_id: uuid.UUID | str) -> str:
    return f"courses/{course_id}"


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
    query = (
        select(tables.courses, tables.users.c.display_name.label("owner_name"))
        .join(tables.users, tables.users.c.id == tables.courses.c.owner_id)
        .where(tables.courses.c.id == course_id)
    )
    if lock:
        query = query.with_for_update(of=tables.courses)
    course = (await conn.execute(query)).first()
    if course is None or (course.state == "draft" and not is_staff(course, principal)):
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
    query = (
        select(tables.courses, tables.users.c.display_name.label("owner_name"))
        .join(tables.users, tables.users.c.id == tables.courses.c.owner_id)
        .where(tables.courses.c.id == course_id)
    )
    return (await conn.execute(query)).one()


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
        level=LEVEL_VALUES.get(course.level, courses_pb2.COURSE_LEVEL_UNSPECIFIED),
        state=STATE_VALUES[course.state],
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


def lesson_name(course_id: uuid.UUID | str, lesson_id: uuid.UUID | str) -> str:
    return f"courses/{course_id}/lessons/{lesson_id}"


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
