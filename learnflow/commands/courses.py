"""Course authoring commands: courses (create, update, publish, archive) and their lessons
(create, update, reorder, delete).

Every command runs in one transaction that holds the course row `FOR UPDATE` while it
changes lessons or counts, so positions stay dense (1..n) and `lesson_count` exact.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from learnflow.commands import tables
from learnflow.commands.common import (
    LEVEL_NAMES,
    caller,
    course_message,
    course_name,
    course_payload,
    is_staff,
    lesson_name,
    load_course,
    load_lesson,
    parse_ids,
    reload_course,
)
from learnflow.commands.unit_of_work import Database, UnitOfWork
from learnflow.context import Ctx, Principal
from learnflow.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    PermissionDenied,
    Unavailable,
)
from learnflow.events import LessonDeletedPayload, LessonPayload, OutlineEntry
from learnflow.v1 import courses_pb2, courses_pb2_grpc
from learnflow.values import parse_uuid

TAG_RE = re.compile(r"^[a-z0-9-]{1,30}$")
MAX_TAGS = 10
COURSE_CREATE_FIELDS = (
    "title",
    "summary",
    "tags",
    "level",
    "capacity",
    "enrollment_open_time",
    "enrollment_close_time",
)
COURSE_MASK_PATHS = frozenset(COURSE_CREATE_FIELDS)
CONTENT_KINDS = ("article", "video", "quiz", "code_exercise")
LESSON_CONTENT_PATHS = frozenset({"content", *CONTENT_KINDS})
LESSON_MASK_PATHS = frozenset({"title", "position"}) | LESSON_CONTENT_PATHS
MAX_MARKDOWN = 100_000
MAX_VIDEO_SECONDS = 86_400
MAX_QUESTIONS = 50
DEFAULT_PASS_THRESHOLD = 70
SLUG_ATTEMPTS = 10


def slugify(title: str) -> str:
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")
    return slug[:80].strip("-") or "course"


# ---------------------------------------------------------------------------- validation


def _timestamp_field(
    course: courses_pb2.Course, field: str, violations: list[FieldViolation]
) -> dt.datetime | None:
    if not course.HasField(field):  # type: ignore[arg-type]
        return None
    try:
        return getattr(course, field).ToDatetime(tzinfo=dt.UTC)  # type: ignore[no-any-return]
    except (ValueError, OverflowError):
        violations.append(FieldViolation(f"course.{field}", "is not a valid timestamp"))
        return None


def course_values(
    course: courses_pb2.Course, fields: Iterable[str]
) -> tuple[dict[str, Any], list[FieldViolation]]:
    """Validated column values for the named `Course` fields, and the field violations."""
    names = set(fields)
    values: dict[str, Any] = {}
    violations: list[FieldViolation] = []
    if "title" in names:
        title = course.title.strip()
        if not 3 <= len(title) <= 120:
            violations.append(FieldViolation("course.title", "must be 3 to 120 characters"))
        values["title"] = title
    if "summary" in names:
        summary = course.summary.strip()
        if len(summary) > 2000:
            violations.append(FieldViolation("course.summary", "must be at most 2000 characters"))
        values["summary"] = summary
    if "tags" in names:
        tags = list(course.tags)
        if len(tags) > MAX_TAGS:
            violations.append(FieldViolation("course.tags", f"at most {MAX_TAGS} tags"))
        seen: set[str] = set()
        for i, tag in enumerate(tags):
            if not TAG_RE.match(tag):
                violations.append(
                    FieldViolation(
                        f"course.tags[{i}]", "must be 1 to 30 characters of a-z, 0-9 and '-'"
                    )
                )
            elif tag in seen:
                violations.append(FieldViolation(f"course.tags[{i}]", "duplicate tag"))
            seen.add(tag)
        values["tags"] = tags
    if "level" in names:
        level = LEVEL_NAMES.get(course.level)
        if level is None:
            violations.append(FieldViolation("course.level", "unknown course level"))
        values["level"] = level
    if "capacity" in names:
        if course.capacity < 0:
            violations.append(
                FieldViolation("course.capacity", "must be 0 (unlimited) or a positive number")
            )
        values["capacity"] = course.capacity
    if "enrollment_open_time" in names:
        values["enrollment_open_at"] = _timestamp_field(course, "enrollment_open_time", violations)
    if "enrollment_close_time" in names:
        values["enrollment_close_at"] = _timestamp_field(
            course, "enrollment_close_time", violations
        )
    return values, violations


def window_violations(
    open_at: dt.datetime | None, close_at: dt.datetime | None
) -> list[FieldViolation]:
    if open_at is not None and close_at is not None and close_at <= open_at:
        return [
            FieldViolation("course.enrollment_close_time", "must be after enrollment_open_time")
        ]
    return []


def mask_paths(mask_paths: Iterable[str], allowed: frozenset[str]) -> list[str]:
    paths = list(mask_paths)
    if not paths:
        raise InvalidArgument(
            [
                FieldViolation(
                    "update_mask", f"must name the fields to update: {', '.join(sorted(allowed))}"
                )
            ]
        )
    unknown = sorted({p for p in paths if p not in allowed})
    if unknown:
        raise InvalidArgument(
            [
                FieldViolation(
                    "update_mask",
                    f"unknown or read-only field(s) {', '.join(unknown)}; "
                    f"updatable: {', '.join(sorted(allowed))}",
                )
            ]
        )
    return paths


def _lesson_title(lesson: courses_pb2.Lesson, violations: list[FieldViolation]) -> str:
    title = lesson.title.strip()
    if not 1 <= len(title) <= 120:
        violations.append(FieldViolation("lesson.title", "must be 1 to 120 characters"))
    return title


def _article(article: courses_pb2.Article, violations: list[FieldViolation]) -> dict[str, Any]:
    if not article.markdown.strip() or len(article.markdown) > MAX_MARKDOWN:
        violations.append(
            FieldViolation("lesson.article.markdown", "must be 1 to 100,000 characters")
        )
    return {"markdown": article.markdown}


def _video(video: courses_pb2.Video, violations: list[FieldViolation]) -> dict[str, Any]:
    url = video.url.strip()
    parts = urlsplit(url) if len(url) <= 2048 else None
    if (
        parts is None
        or parts.scheme != "https"
        or not parts.hostname
        or any(c.isspace() for c in url)
    ):
        violations.append(
            FieldViolation("lesson.video.url", "must be an https URL of at most 2048 characters")
        )
    if not 1 <= video.duration_seconds <= MAX_VIDEO_SECONDS:
        violations.append(
            FieldViolation("lesson.video.duration_seconds", "must be 1 to 86,400 seconds")
        )
    return {"url": url, "duration_seconds": video.duration_seconds}


def _quiz(quiz: courses_pb2.Quiz, violations: list[FieldViolation]) -> dict[str, Any]:
    if not 1 <= len(quiz.questions) <= MAX_QUESTIONS:
        violations.append(FieldViolation("lesson.quiz.questions", "must have 1 to 50 questions"))
    given_ids = {q.id.strip() for q in quiz.questions if q.id.strip()}
    seen: set[str] = set()
    questions: list[dict[str, Any]] = []
    for i, question in enumerate(quiz.questions):
        path = f"lesson.quiz.questions[{i}]"
        question_id = question.id.strip()
        if question_id:
            if len(question_id) > 64:
                violations.append(FieldViolation(f"{path}.id", "must be at most 64 characters"))
            elif question_id in seen:
                violations.append(FieldViolation(f"{path}.id", "duplicate question id"))
            seen.add(question_id)
        else:
            question_id = uuid.uuid4().hex[:12]
            while question_id in given_ids or question_id in seen:
                question_id = uuid.uuid4().hex[:12]
            seen.add(question_id)
        prompt = question.prompt.strip()
        if not 1 <= len(prompt) <= 2000:
            violations.append(FieldViolation(f"{path}.prompt", "must be 1 to 2000 characters"))
        choices = list(question.choices)
        if not 2 <= len(choices) <= 10:
            violations.append(FieldViolation(f"{path}.choices", "must have 2 to 10 choices"))
        for j, choice in enumerate(choices):
            if not choice.strip() or len(choice) > 500:
                violations.append(
                    FieldViolation(f"{path}.choices[{j}]", "must be 1 to 500 characters")
                )
        correct = sorted(set(question.correct_choice_indexes))
        if not correct:
            violations.append(
                FieldViolation(f"{path}.correct_choice_indexes", "at least one is required")
            )
        elif any(not 0 <= k < len(choices) for k in correct):
            violations.append(
                FieldViolation(
                    f"{path}.correct_choice_indexes",
                    f"must be indexes into choices (0 to {max(len(choices) - 1, 0)})",
                )
            )
        questions.append(
            {
                "id": question_id,
                "prompt": prompt,
                "choices": choices,
                "correct_choice_indexes": correct,
            }
        )
    threshold = quiz.pass_threshold_percent or DEFAULT_PASS_THRESHOLD
    if not 1 <= threshold <= 100:
        violations.append(
            FieldViolation("lesson.quiz.pass_threshold_percent", "must be 1 to 100 (70 when unset)")
        )
    return {"questions": questions, "pass_threshold_percent": threshold}


def _code_exercise(
    exercise: courses_pb2.CodeExercise, violations: list[FieldViolation]
) -> dict[str, Any]:
    language = exercise.language.strip()
    if not 1 <= len(language) <= 40:
        violations.append(
            FieldViolation("lesson.code_exercise.language", "must be 1 to 40 characters")
        )
    if not exercise.prompt.strip() or len(exercise.prompt) > MAX_MARKDOWN:
        violations.append(
            FieldViolation("lesson.code_exercise.prompt", "must be 1 to 100,000 characters")
        )
    if len(exercise.starter_code) > MAX_MARKDOWN:
        violations.append(
            FieldViolation(
                "lesson.code_exercise.starter_code", "must be at most 100,000 characters"
            )
        )
    return {
        "language": language,
        "prompt": exercise.prompt,
        "starter_code": exercise.starter_code,
    }


def lesson_content(
    lesson: courses_pb2.Lesson, violations: list[FieldViolation]
) -> tuple[str, dict[str, Any]]:
    """The content type and its JSON document (field names as in the proto)."""
    kind = lesson.WhichOneof("content")
    if kind == "article":
        return kind, _article(lesson.article, violations)
    if kind == "video":
        return kind, _video(lesson.video, violations)
    if kind == "quiz":
        return kind, _quiz(lesson.quiz, violations)
    if kind == "code_exercise":
        return kind, _code_exercise(lesson.code_exercise, violations)
    violations.append(
        FieldViolation("lesson.content", "one of article, video, quiz or code_exercise is required")
    )
    return "", {}


# ---------------------------------------------------------------------------- lessons out


def fill_content(message: courses_pb2.Lesson, content_type: str, content: dict[str, Any]) -> None:
    if content_type == "article":
        message.article.markdown = content["markdown"]
    elif content_type == "video":
        message.video.url = content["url"]
        message.video.duration_seconds = content["duration_seconds"]
    elif content_type == "quiz":
        message.quiz.pass_threshold_percent = content["pass_threshold_percent"]
        message.quiz.questions.extend(
            courses_pb2.QuizQuestion(
                id=q["id"],
                prompt=q["prompt"],
                choices=q["choices"],
                correct_choice_indexes=q["correct_choice_indexes"],
            )
            for q in content["questions"]
        )
    elif content_type == "code_exercise":
        message.code_exercise.language = content["language"]
        message.code_exercise.prompt = content["prompt"]
        message.code_exercise.starter_code = content["starter_code"]


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
    fill_content(message, lesson.content_type, lesson.content)
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


# ---------------------------------------------------------------------------- rules


def require_staff(course: Any, principal: Principal) -> None:
    if not is_staff(course, principal):
        raise PermissionDenied("only the course's owner or an admin may change it")


def require_editable(course: Any) -> None:
    if course.state == "archived":
        raise FailedPrecondition(
            "COURSE_STATE", course_name(course.id), "an archived course can no longer be changed"
        )


def _constraint(error: IntegrityError) -> str:
    diag = getattr(error.orig, "diag", None)
    return str(getattr(diag, "constraint_name", "") or "")


async def with_unique_slug(
    conn: AsyncConnection,
    title: str,
    write: Callable[[str], Awaitable[None]],
    exclude: uuid.UUID | None = None,
) -> str:
    """Runs `write(slug)` with the first free slug of `title` (`intro`, `intro-2`, ...).

    A concurrent writer may take the same slug between the look-up and the write: the unique
    index refuses the second one, whose savepoint rolls back and which tries the next slug.
    """
    base = slugify(title)
    slug_col = tables.courses.c.slug
    for _ in range(SLUG_ATTEMPTS):
        query = select(slug_col).where(or_(slug_col == base, slug_col.like(f"{base}-%")))
        if exclude is not None:
            query = query.where(tables.courses.c.id != exclude)
        taken = set((await conn.execute(query)).scalars())
        slug, suffix = base, 2
        while slug in taken:
            slug, suffix = f"{base}-{suffix}", suffix + 1
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
            await uow.audit("course.create", course_name(course_id))
            await uow.emit("course.created", "course", course_id, course_payload(course))
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

        async def change(uow: UnitOfWork) -> courses_pb2.UpdateCourseResponse:
            course = await load_course(uow.conn, course_id, principal, lock=True)
            require_staff(course, principal)
            require_editable(course)
            bad_window = window_violations(
                values.get("enrollment_open_at", course.enrollment_open_at),
                values.get("enrollment_close_at", course.enrollment_close_at),
            )
            if bad_window:
                raise InvalidArgument(bad_window)
            capacity = values.get("capacity", course.capacity)
            if capacity and capacity < course.active_enrollment_count:
                raise FailedPrecondition(
                    "CAPACITY",
                    course_name(course_id),
                    f"capacity cannot be below the {course.active_enrollment_count} "
                    "active enrollments",
                )
            await uow.conn.execute(
                update(tables.courses)
                .where(tables.courses.c.id == course_id)
                .values(**values, updated_at=func.now())
            )
            if course.state == "draft" and values.get("title", course.title) != course.title:
                # The slug follows the title until the course is published and linked to.
                async def write(slug: str) -> None:
                    await uow.conn.execute(
                        update(tables.courses)
                        .where(tables.courses.c.id == course_id)
                        .values(slug=slug)
                    )

                await with_unique_slug(uow.conn, values["title"], write, exclude=course_id)
            course = await reload_course(uow.conn, course_id)
            await uow.audit(
                "course.update", course_name(course_id), details={"fields": sorted(set(paths))}
            )
            await uow.emit("course.updated", "course", course_id, course_payload(course))
            return courses_pb2.UpdateCourseResponse(
                course=course_message(course), consistency_token=uow.consistency_token
            )

        return await self.db.run_command(
            request, request.request_id, courses_pb2.UpdateCourseResponse, change
        )

    async def PublishCourse(
        self, request: courses_pb2.PublishCourseRequest, context: Ctx = None
    ) -> courses_pb2.PublishCourseResponse:
        principal = caller()
        course_id = parse_uuid(request.course_id, "course_id")

        async def publish(uow: UnitOfWork) -> courses_pb2.PublishCourseResponse:
            course = await load_course(uow.conn, course_id, principal, lock=True)
            require_staff(course, principal)
            if course.state != "draft":
                raise FailedPrecondition(
                    "COURSE_STATE",
                    course_name(course_id),
                    f"only a draft course can be published; this one is {course.state}",
                )
            if course.lesson_count < 1:
                raise FailedPrecondition(
                    "LESSONS",
                    course_name(course_id),
                    "a course needs at least one lesson to be published",
                )
            await uow.conn.execute(
                update(tables.courses)
                .where(tables.courses.c.id == course_id)
                .values(state="published", published_at=func.now(), updated_at=func.now())
            )
            course = await reload_course(uow.conn, course_id)
            await uow.audit("course.publish", course_name(course_id))
            await uow.emit("course.published", "course", course_id, course_payload(course))
            return courses_pb2.PublishCourseResponse(
                course=course_message(course), consistency_token=uow.consistency_token
            )

        return await self.db.run_command(
            request, request.request_id, courses_pb2.PublishCourseResponse, publish
        )

    async def ArchiveCourse(
        self, request: courses_pb2.ArchiveCourseRequest, context: Ctx = None
    ) -> courses_pb2.ArchiveCourseResponse:
        principal = caller()
        course_id = parse_uuid(request.course_id, "course_id")

        async def archive(uow: UnitOfWork) -> courses_pb2.ArchiveCourseResponse:
            course = await load_course(uow.conn, course_id, principal, lock=True)
            require_staff(course, principal)
            if course.state == "archived":
                raise FailedPrecondition(
                    "COURSE_STATE", course_name(course_id), "the course is already archived"
                )
            await uow.conn.execute(
                update(tables.courses)
                .where(tables.courses.c.id == course_id)
                .values(state="archived", updated_at=func.now())
            )
            course = await reload_course(uow.conn, course_id)
            await uow.audit("course.archive", course_name(course_id))
            await uow.emit("course.archived", "course", course_id, course_payload(course))
            return courses_pb2.ArchiveCourseResponse(
                course=course_message(course), consistency_token=uow.consistency_token
            )

        return await self.db.run_command(
            request, request.request_id, courses_pb2.ArchiveCourseResponse, archive
        )

    async def CreateLesson(
        self, request: courses_pb2.CreateLessonRequest, context: Ctx = None
    ) -> courses_pb2.CreateLessonResponse:
        principal = caller()
        course_id = parse_uuid(request.course_id, "course_id")
        violations: list[FieldViolation] = []
        if request.lesson.course_id and request.lesson.course_id != request.course_id:
            violations.append(FieldViolation("lesson.course_id", "must match course_id"))
        title = _lesson_title(request.lesson, violations)
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
            await uow.conn.execute(
                update(tables.courses)
                .where(tables.courses.c.id == course_id)
                .values(lesson_count=tables.courses.c.lesson_count + 1)
            )
            outline = await course_outline(uow.conn, course_id)
            course = await reload_course(uow.conn, course_id)
            await uow.audit("lesson.create", lesson_name(course_id, lesson.id))
            await uow.emit(
                "lesson.created", "lesson", lesson.id, lesson_payload(lesson, course.title, outline)
            )
            await uow.emit("course.counts_changed", "course", course_id, course_payload(course))
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
            values["title"] = _lesson_title(request.lesson, violations)
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
            await uow.audit(
                "lesson.update",
                lesson_name(course_id, lesson_id),
                details={"fields": sorted(paths)},
            )
            await uow.emit(
                "lesson.updated", "lesson", lesson_id, lesson_payload(lesson, course.title, outline)
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
            if course.state == "published" and course.lesson_count <= 1:
                raise FailedPrecondition(
                    "LESSONS",
                    course_name(course_id),
                    "a published course must keep at least one lesson",
                )
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
            await uow.conn.execute(
                update(tables.courses)
                .where(tables.courses.c.id == course_id)
                .values(lesson_count=tables.courses.c.lesson_count - 1)
            )
            outline = await course_outline(uow.conn, course_id)
            course = await reload_course(uow.conn, course_id)
            payload: LessonDeletedPayload = {
                "id": str(lesson_id),
                "course_id": str(course_id),
                "outline": outline,
            }
            await uow.audit("lesson.delete", lesson_name(course_id, lesson_id))
            await uow.emit("lesson.deleted", "lesson", lesson_id, payload)
            await uow.emit("course.counts_changed", "course", course_id, course_payload(course))
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
