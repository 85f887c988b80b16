"""Course authoring commands: courses (create, update, and the lifecycle: publish, unpublish,
archive, restore, delete) and their lessons (create, update, reorder, delete).

Every command runs in one transaction that holds the course row `FOR UPDATE` while it
changes lessons or counts, so positions stay dense (1..n) and `lesson_count` exact.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from google.protobuf.message import Message
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from learnflow.commands.course_input import (
    COURSE_CREATE_FIELDS,
    COURSE_MASK_PATHS,
    LESSON_CONTENT_PATHS,
    LESSON_MASK_PATHS,
    course_values,
    lesson_content,
    lesson_title,
    mask_paths,
    window_violations,
)
from learnflow.commands.course_records import (
    course_message,
    course_outline,
    course_payload,
    lesson_message,
    lesson_payload,
    load_course,
    load_lesson,
    reload_course,
    update_course,
    update_course_as_seen,
)
from learnflow.commands.requests import caller, parse_ids
from learnflow.commands.rules import (
    SLUG_SUFFIX_ALPHABET,
    SLUG_SUFFIX_LENGTH,
    course_slug,
    require_archivable,
    require_capacity_for_enrolled,
    require_deletable,
    require_editable,
    require_lesson_removable,
    require_publishable,
    require_restorable,
    require_staff,
    require_unpublishable,
)
from learnflow.context import Ctx
from learnflow.errors import FieldViolation, InvalidArgument, Unavailable
from learnflow.events import (
    COURSE_ARCHIVED,
    COURSE_COUNTS_CHANGED,
    COURSE_CREATED,
    COURSE_DELETED,
    COURSE_PUBLISHED,
    COURSE_RESTORED,
    COURSE_UNPUBLISHED,
    COURSE_UPDATED,
    LESSON_CREATED,
    LESSON_DELETED,
    LESSON_UPDATED,
    CourseDeletedPayload,
    CoursePayload,
    EventType,
    LessonDeletedPayload,
)
from learnflow.storage import tables
from learnflow.storage.unit_of_work import Database, UnitOfWork
from learnflow.v1 import courses_pb2, courses_pb2_grpc
from learnflow.values import parse_uuid
from learnflow.vocabulary import course_name, lesson_name

SLUG_ATTEMPTS = 10
MovedT = TypeVar("MovedT", bound=Message)  # a lifecycle method's response


def _constraint(error: IntegrityError) -> str:
    diag = getattr(error.orig, "diag", None)
    return str(getattr(diag, "constraint_name", "") or "")


async def with_unique_slug(
    conn: AsyncConnection, title: str, write: Callable[[str], Awaitable[None]]
) -> str:
    """Runs `write(slug)` with the slug of `title` and a fresh random suffix (`rules.course_slug`).

    No other course is looked at, so the slug tells nothing about anyone's drafts. Should the
    suffix collide, the unique index refuses the write, whose savepoint rolls back, and another
    suffix is tried.
    """
    for _ in range(SLUG_ATTEMPTS):
        suffix = "".join(secrets.choice(SLUG_SUFFIX_ALPHABET) for _ in range(SLUG_SUFFIX_LENGTH))
        slug = course_slug(title, suffix)
        try:
            async with conn.begin_nested():
                await write(slug)
            return slug
        except IntegrityError as error:
            if _constraint(error) != "courses_slug_key":
                raise
    raise Unavailable("could not allocate a unique course slug; retry the request", 1)


# ---------------------------------------------------------------------------- service


class CourseCommands(courses_pb2_grpc.CourseServiceServicer):
    def __init__(self, db: Database) -> None:
        self.db = db

    async def CreateCourse(
        self, request: courses_pb2.CreateCourseRequest, context: Ctx = None
    ) -> courses_pb2.CreateCourseResponse:
        principal = caller()
        values, violations = course_values(request.course, COURSE_CREATE_FIELDS)
        violations += window_violations(values["enrollment_open_at"], values["enrollment_close_at"])
        if violations:
            raise InvalidArgument(violations)

        async def create(uow: UnitOfWork) -> courses_pb2.CreateCourseResponse:
            course_id = uuid.uuid4()

            async def write(slug: str) -> None:
                await uow.conn.execute(
                    insert(tables.courses).values(
                        id=course_id,
                        owner_id=principal.user_id,
                        slug=slug,
                        state="draft",
                        lesson_count=0,
                        active_enrollment_count=0,
                        **values,
                    )
                )

            await with_unique_slug(uow.conn, values["title"], write)
            course = await reload_course(uow.conn, course_id)
            await uow.audit_and_emit(
                "course.create",
                course_name(course_id),
                COURSE_CREATED,
                course_id,
                course_payload(course),
            )
            return courses_pb2.CreateCourseResponse(
                course=course_message(course), consistency_token=uow.consistency_token
            )

        return await self.db.run_command(
            request, request.request_id, courses_pb2.CreateCourseResponse, create
        )

    async def UpdateCourse(
        self, request: courses_pb2.UpdateCourseRequest, context: Ctx = None
    ) -> courses_pb2.UpdateCourseResponse:
        principal = caller()
        course_id = parse_uuid(request.course.id, "course.id")
        paths = mask_paths(request.update_mask.paths, COURSE_MASK_PATHS)
        values, violations = course_values(request.course, paths)
        if violations:
            raise InvalidArgument(violations)

        def check(course: Any) -> None:
            require_staff(course, principal)
            require_editable(course)
            bad_window = window_violations(
                values.get("enrollment_open_at", course.enrollment_open_at),
                values.get("enrollment_close_at", course.enrollment_close_at),
            )
            if bad_window:
                raise InvalidArgument(bad_window)
            require_capacity_for_enrolled(course, values.get("capacity", course.capacity))

        def renames_draft(course: Any) -> bool:
            return bool(
                course.state == "draft" and values.get("title", course.title) != course.title
            )

        async def change(uow: UnitOfWork) -> courses_pb2.UpdateCourseResponse:
            # Checked first without the row lock; the UPDATE then writes only a row that still
            # passes them (`update_course_as_seen`). A draft's new title takes the locked way:
            # its slug is retried under savepoints. So does a row changed in between.
            seen = await load_course(uow.conn, course_id, principal)
            check(seen)
            course = None
            if not renames_draft(seen):
                course = await update_course_as_seen(uow.conn, seen, **values)
            if course is None:
                course = await self._update_locked(uow, course_id, principal, values, check)
            await uow.audit_and_emit(
                "course.update",
                course_name(course_id),
                COURSE_UPDATED,
                course_id,
                course_payload(course),
                details={"fields": sorted(set(paths))},
            )
            return courses_pb2.UpdateCourseResponse(
                course=course_message(course), consistency_token=uow.consistency_token
            )

        return await self.db.run_command(
            request, request.request_id, courses_pb2.UpdateCourseResponse, change
        )

    async def _update_locked(
        self,
        uow: UnitOfWork,
        course_id: uuid.UUID,
        principal: Any,
        values: dict[str, Any],
        check: Callable[[Any], None],
    ) -> Any:
        """UpdateCourse the locked way: the row `FOR UPDATE`, the checks, the write."""
        course = await load_course(uow.conn, course_id, principal, lock=True)
        check(course)
        if course.state == "draft" and values.get("title", course.title) != course.title:
            # The slug follows the title until the course is published and linked to.
            async def write(slug: str) -> None:
                nonlocal course
                course = await update_course(
                    uow.conn, course_id, **values, slug=slug, updated_at=func.now()
                )

            await with_unique_slug(uow.conn, values["title"], write)
        else:
            course = await update_course(uow.conn, course_id, **values, updated_at=func.now())
        return course

    async def PublishCourse(
        self, request: courses_pb2.PublishCourseRequest, context: Ctx = None
    ) -> courses_pb2.PublishCourseResponse:
        return await self._move(
            request,
            request.course_id,
            request.request_id,
            courses_pb2.PublishCourseResponse,
            require_publishable,
            {"state": "published", "published_at": func.now()},
            "course.publish",
            COURSE_PUBLISHED,
        )

    async def ArchiveCourse(
        self, request: courses_pb2.ArchiveCourseRequest, context: Ctx = None
    ) -> courses_pb2.ArchiveCourseResponse:
        return await self._move(
            request,
            request.course_id,
            request.request_id,
            courses_pb2.ArchiveCourseResponse,
            require_archivable,
            {"state": "archived"},
            "course.archive",
            COURSE_ARCHIVED,
        )

    async def UnpublishCourse(
        self, request: courses_pb2.UnpublishCourseRequest, context: Ctx = None
    ) -> courses_pb2.UnpublishCourseResponse:
        # The row lock excludes a concurrent enrollment: the count the rule reads is the count.
        return await self._move(
            request,
            request.course_id,
            request.request_id,
            courses_pb2.UnpublishCourseResponse,
            require_unpublishable,
            {"state": "draft", "published_at": None},
            "course.unpublish",
            COURSE_UNPUBLISHED,
        )

    async def RestoreCourse(
        self, request: courses_pb2.RestoreCourseRequest, context: Ctx = None
    ) -> courses_pb2.RestoreCourseResponse:
        # archived -> draft: see the rule for why not published.
        return await self._move(
            request,
            request.course_id,
            request.request_id,
            courses_pb2.RestoreCourseResponse,
            require_restorable,
            {"state": "draft", "published_at": None},
            "course.restore",
            COURSE_RESTORED,
        )

    async def _move(
        self,
        request: Message,
        course_id_text: str,
        request_id: str,
        response_type: type[MovedT],
        rule: Callable[[Any], None],
        values: dict[str, Any],
        action: str,
        event: EventType[CoursePayload],
    ) -> MovedT:
        """A lifecycle transition: with the course row locked and the caller its staff, `rule`
        allows the move; the row takes `values`, and the change is audited with its event."""
        principal = caller()
        course_id = parse_uuid(course_id_text, "course_id")

        async def move(uow: UnitOfWork) -> MovedT:
            course = await load_course(uow.conn, course_id, principal, lock=True)
            require_staff(course, principal)
            rule(course)
            course = await update_course(uow.conn, course_id, **values, updated_at=func.now())
            await uow.audit_and_emit(
                action, course_name(course_id), event, course_id, course_payload(course)
            )
            return response_type(
                course=course_message(course), consistency_token=uow.consistency_token
            )

        return await self.db.run_command(request, request_id, response_type, move)

    async def DeleteCourse(
        self, request: courses_pb2.DeleteCourseRequest, context: Ctx = None
    ) -> courses_pb2.DeleteCourseResponse:
        principal = caller()
        course_id = parse_uuid(request.course_id, "course_id")

        async def remove(uow: UnitOfWork) -> courses_pb2.DeleteCourseResponse:
            course = await load_course(uow.conn, course_id, principal, lock=True)
            require_staff(course, principal)
            # Enrolling takes the course row lock too: no enrollment can slip in after this.
            enrollment_rows = (
                await uow.conn.execute(
                    select(func.count())
                    .select_from(tables.enrollments)
                    .where(tables.enrollments.c.course_id == course_id)
                )
            ).scalar_one()
            require_deletable(course, enrollment_rows)
            lesson_ids = [
                str(row.id)
                for row in await uow.conn.execute(
                    select(tables.lessons.c.id)
                    .where(tables.lessons.c.course_id == course_id)
                    .order_by(tables.lessons.c.position)
                )
            ]
            # Staff may have commented on the draft's lessons; without learners there are no
            # completions or quiz attempts, but nothing may keep a reference to the course.
            for table in (
                tables.comments,
                tables.quiz_attempts,
                tables.lesson_completions,
                tables.lessons,
            ):
                await uow.conn.execute(delete(table).where(table.c.course_id == course_id))
            await uow.conn.execute(delete(tables.courses).where(tables.courses.c.id == course_id))
            payload: CourseDeletedPayload = {
                "id": str(course_id),
                "owner_id": str(course.owner_id),
                "lesson_ids": lesson_ids,
                "deleted_at": (await uow.conn.execute(select(func.now()))).scalar_one().isoformat(),
            }
            await uow.audit_and_emit(
                "course.delete",
                course_name(course_id),
                COURSE_DELETED,
                course_id,
                payload,
                details={"title": course.title},
            )
            return courses_pb2.DeleteCourseResponse(consistency_token=uow.consistency_token)

        return await self.db.run_command(
            request, request.request_id, courses_pb2.DeleteCourseResponse, remove
        )

    async def CreateLesson(
        self, request: courses_pb2.CreateLessonRequest, context: Ctx = None
    ) -> courses_pb2.CreateLessonResponse:
        principal = caller()
        course_id = parse_uuid(request.course_id, "course_id")
        violations: list[FieldViolation] = []
        if request.lesson.course_id and request.lesson.course_id != request.course_id:
            violations.append(FieldViolation("lesson.course_id", "must match course_id"))
        title = lesson_title(request.lesson, violations)
        content_type, content = lesson_content(request.lesson, violations)
        position = request.lesson.position
        if position < 0:
            violations.append(
                FieldViolation("lesson.position", "must be 0 (append) or a 1-based position")
            )
        if violations:
            raise InvalidArgument(violations)

        async def create(uow: UnitOfWork) -> courses_pb2.CreateLessonResponse:
            course = await load_course(uow.conn, course_id, principal, lock=True)
            require_staff(course, principal)
            require_editable(course)
            count = course.lesson_count
            if position > count + 1:
                raise InvalidArgument(
                    [FieldViolation("lesson.position", f"must be 0 (append) or 1 to {count + 1}")]
                )
            at = position or count + 1
            if at <= count:
                await uow.conn.execute(
                    update(tables.lessons)
                    .where(
                        tables.lessons.c.course_id == course_id,
                        tables.lessons.c.position >= at,
                    )
                    .values(position=tables.lessons.c.position + 1)
                )
            lesson = (
                await uow.conn.execute(
                    insert(tables.lessons)
                    .values(
                        id=uuid.uuid4(),
                        course_id=course_id,
                        title=title,
                        position=at,
                        content_type=content_type,
                        content=content,
                    )
                    .returning(*tables.lessons.c)
                )
            ).one()
            course = await update_course(
                uow.conn, course_id, lesson_count=tables.courses.c.lesson_count + 1
            )
            outline = await course_outline(uow.conn, course_id)
            await uow.audit_and_emit(
                "lesson.create",
                lesson_name(course_id, lesson.id),
                LESSON_CREATED,
                lesson.id,
                lesson_payload(lesson, course.title, outline),
            )
            await uow.emit(COURSE_COUNTS_CHANGED, course_id, course_payload(course))
            return courses_pb2.CreateLessonResponse(
                lesson=lesson_message(lesson, course.title, outline),
                consistency_token=uow.consistency_token,
            )

        return await self.db.run_command(
            request, request.request_id, courses_pb2.CreateLessonResponse, create
        )

    async def UpdateLesson(
        self, request: courses_pb2.UpdateLessonRequest, context: Ctx = None
    ) -> courses_pb2.UpdateLessonResponse:
        principal = caller()
        course_id, lesson_id = parse_ids(
            ("lesson.course_id", request.lesson.course_id), ("lesson.id", request.lesson.id)
        )
        paths = set(mask_paths(request.update_mask.paths, LESSON_MASK_PATHS))
        violations: list[FieldViolation] = []
        values: dict[str, Any] = {}
        if "title" in paths:
            values["title"] = lesson_title(request.lesson, violations)
        content_paths = paths & LESSON_CONTENT_PATHS
        if content_paths:
            kind = request.lesson.WhichOneof("content")
            named = content_paths - {"content"}
            if kind is not None and named and named != {kind}:
                raise InvalidArgument(
                    [
                        FieldViolation(
                            "update_mask",
                            f"names {', '.join(sorted(named))} but the lesson carries {kind}",
                        )
                    ]
                )
            values["content_type"], values["content"] = lesson_content(request.lesson, violations)
        new_position = request.lesson.position if "position" in paths else None
        if new_position is not None and new_position < 1:
            violations.append(FieldViolation("lesson.position", "must be a 1-based position"))
        if violations:
            raise InvalidArgument(violations)

        async def change(uow: UnitOfWork) -> courses_pb2.UpdateLessonResponse:
            course = await load_course(uow.conn, course_id, principal, lock=True)
            require_staff(course, principal)
            require_editable(course)
            lesson = await load_lesson(uow.conn, course_id, lesson_id)
            if new_position is not None and new_position != lesson.position:
                if new_position > course.lesson_count:
                    raise InvalidArgument(
                        [FieldViolation("lesson.position", f"must be 1 to {course.lesson_count}")]
                    )
                await _move(uow.conn, course_id, lesson.position, new_position)
                values["position"] = new_position
            lesson = (
                await uow.conn.execute(
                    update(tables.lessons)
                    .where(tables.lessons.c.id == lesson_id)
                    .values(**values, updated_at=func.now())
                    .returning(*tables.lessons.c)
                )
            ).one()
            outline = await course_outline(uow.conn, course_id)
            await uow.audit_and_emit(
                "lesson.update",
                lesson_name(course_id, lesson_id),
                LESSON_UPDATED,
                lesson_id,
                lesson_payload(lesson, course.title, outline),
                details={"fields": sorted(paths)},
            )
            return courses_pb2.UpdateLessonResponse(
                lesson=lesson_message(lesson, course.title, outline),
                consistency_token=uow.consistency_token,
            )

        return await self.db.run_command(
            request, request.request_id, courses_pb2.UpdateLessonResponse, change
        )

    async def DeleteLesson(
        self, request: courses_pb2.DeleteLessonRequest, context: Ctx = None
    ) -> courses_pb2.DeleteLessonResponse:
        principal = caller()
        course_id, lesson_id = parse_ids(
            ("course_id", request.course_id), ("lesson_id", request.lesson_id)
        )

        async def remove(uow: UnitOfWork) -> courses_pb2.DeleteLessonResponse:
            course = await load_course(uow.conn, course_id, principal, lock=True)
            require_staff(course, principal)
            require_editable(course)
            lesson = await load_lesson(uow.conn, course_id, lesson_id)
            require_lesson_removable(course)
            await uow.conn.execute(
                delete(tables.lesson_completions).where(
                    tables.lesson_completions.c.course_id == course_id,
                    tables.lesson_completions.c.lesson_id == lesson_id,
                )
            )
            await uow.conn.execute(delete(tables.lessons).where(tables.lessons.c.id == lesson_id))
            await uow.conn.execute(
                update(tables.lessons)
                .where(
                    tables.lessons.c.course_id == course_id,
                    tables.lessons.c.position > lesson.position,
                )
                .values(position=tables.lessons.c.position - 1)
            )
            course = await update_course(
                uow.conn, course_id, lesson_count=tables.courses.c.lesson_count - 1
            )
            outline = await course_outline(uow.conn, course_id)
            payload: LessonDeletedPayload = {
                "id": str(lesson_id),
                "course_id": str(course_id),
                "outline": outline,
            }
            await uow.audit_and_emit(
                "lesson.delete",
                lesson_name(course_id, lesson_id),
                LESSON_DELETED,
                lesson_id,
                payload,
            )
            await uow.emit(COURSE_COUNTS_CHANGED, course_id, course_payload(course))
            return courses_pb2.DeleteLessonResponse(consistency_token=uow.consistency_token)

        return await self.db.run_command(
            request, request.request_id, courses_pb2.DeleteLessonResponse, remove
        )


async def _move(conn: AsyncConnection, course_id: uuid.UUID, old: int, new: int) -> None:
    """Shift the lessons between `old` and `new` one place towards `old`; the unique
    (course_id, position) constraint is deferred to commit, so the transient duplicate of
    `new` is allowed until the moved lesson takes its place."""
    position = tables.lessons.c.position
    if new < old:
        shift = (
            update(tables.lessons)
            .where(position >= new, position < old)
            .values(position=position + 1)
        )
    else:
        shift = (
            update(tables.lessons)
            .where(position > old, position <= new)
            .values(position=position - 1)
        )
    await conn.execute(shift.where(tables.lessons.c.course_id == course_id))
