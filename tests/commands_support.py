"""Helpers for the command tests: direct PostgreSQL reads, "nothing was written" checks and
builders for courses, lessons and enrollments through the real gRPC API."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import psycopg
import pytest

from learnflow.v1 import (
    courses_pb2,
    courses_pb2_grpc,
    learning_pb2,
    learning_pb2_grpc,
)
from tests.support import Caller

# Every table a command may write. Checked as a whole: a failed command must leave all of
# them as they were (the suite runs one test at a time, and nothing else writes to them).
WRITTEN_TABLES = (
    "users",
    "courses",
    "lessons",
    "enrollments",
    "lesson_completions",
    "quiz_attempts",
    "certificates",
    "comments",
    "audit_log",
    "events",
    "idempotency_keys",
    "account_tokens",
    "email_jobs",
)


class Pg:
    def __init__(self, postgres_url: str) -> None:
        self.url = postgres_url.replace("postgresql+psycopg://", "postgresql://", 1)

    async def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        async with await psycopg.AsyncConnection.connect(self.url) as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchall()

    async def value(self, sql: str, *params: Any) -> Any:
        rows = await self.rows(sql, *params)
        return rows[0][0] if rows else None

    async def counts(self) -> dict[str, int]:
        sql = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in WRITTEN_TABLES)
        return {name: count for name, count in await self.rows(sql)}

    async def events(self, aggregate_id: str, event_type: str | None = None) -> list[Any]:
        """Payloads of the events of one aggregate, in order."""
        sql = "SELECT event_type, payload FROM events WHERE aggregate_id = %s"
        params: list[Any] = [aggregate_id]
        if event_type:
            sql += " AND event_type = %s"
            params.append(event_type)
        return await self.rows(sql + " ORDER BY position", *params)

    async def audit(self, resource: str) -> list[tuple[Any, ...]]:
        """(action, outcome, actor_id) rows of the audit log for one resource, in order."""
        return await self.rows(
            "SELECT action, outcome, actor_id::text FROM audit_log WHERE resource = %s ORDER BY id",
            resource,
        )

    @asynccontextmanager
    async def unchanged(self) -> AsyncIterator[None]:
        """Asserts that the block wrote no row: no domain row, no audit row, no event."""
        before = await self.counts()
        yield
        assert await self.counts() == before


@asynccontextmanager
async def fails(code: grpc.StatusCode, pg: Pg | None = None) -> AsyncIterator[Any]:
    """`async with fails(CODE, pg) as err:` — the block must fail with `code` and, when `pg`
    is given, write nothing. `err.value` is the `AioRpcError`."""
    before = await pg.counts() if pg else None
    with pytest.raises(grpc.aio.AioRpcError) as err:
        yield err
    assert err.value.code() == code, err.value.details()
    if pg is not None and before is not None:
        after = await pg.counts()
        if code == grpc.StatusCode.PERMISSION_DENIED:
            # A refusal writes its own audit row (outcome `denied`) and that row's event:
            # nothing else, and nothing of the refused change.
            assert {t: after[t] - before[t] for t in after if after[t] != before[t]} == {
                "audit_log": 1,
                "events": 1,
            }
            last = await pg.value("SELECT outcome FROM audit_log ORDER BY id DESC LIMIT 1")
            assert last == "denied"
        else:
            assert after == before


def courses(channel: grpc.aio.Channel) -> courses_pb2_grpc.CourseServiceAsyncStub:
    return courses_pb2_grpc.CourseServiceStub(channel)


def learning(channel: grpc.aio.Channel) -> learning_pb2_grpc.LearningServiceAsyncStub:
    return learning_pb2_grpc.LearningServiceStub(channel)


def article(title: str = "Lesson", markdown: str = "# Hello\n\nSome text.") -> courses_pb2.Lesson:
    return courses_pb2.Lesson(title=title, article=courses_pb2.Article(markdown=markdown))


def quiz_lesson(title: str = "Quiz", threshold: int = 0) -> courses_pb2.Lesson:
    """Two questions: q1 (answer 1) and q2 (answers 0 and 2)."""
    return courses_pb2.Lesson(
        title=title,
        quiz=courses_pb2.Quiz(
            pass_threshold_percent=threshold,
            questions=[
                courses_pb2.QuizQuestion(
                    id="q1", prompt="2 + 2?", choices=["3", "4"], correct_choice_indexes=[1]
                ),
                courses_pb2.QuizQuestion(
                    id="q2",
                    prompt="Even numbers?",
                    choices=["2", "3", "4"],
                    correct_choice_indexes=[0, 2],
                ),
            ],
        ),
    )


async def new_course(
    who: Caller, title: str = "", request_id: str = "", **fields: Any
) -> courses_pb2.Course:
    reply = await courses(who.channel).CreateCourse(
        courses_pb2.CreateCourseRequest(
            course=courses_pb2.Course(title=title or f"Course {uuid.uuid4().hex[:8]}", **fields),
            request_id=request_id,
        ),
        metadata=who.metadata(),
    )
    return reply.course


async def add_lesson(
    who: Caller, course_id: str, lesson: courses_pb2.Lesson | None = None
) -> courses_pb2.Lesson:
    reply = await courses(who.channel).CreateLesson(
        courses_pb2.CreateLessonRequest(course_id=course_id, lesson=lesson or article()),
        metadata=who.metadata(),
    )
    return reply.lesson


async def published_course(
    who: Caller, lessons: list[courses_pb2.Lesson] | None = None, **fields: Any
) -> tuple[courses_pb2.Course, list[courses_pb2.Lesson]]:
    course = await new_course(who, **fields)
    added = [await add_lesson(who, course.id, lesson) for lesson in lessons or [article()]]
    reply = await courses(who.channel).PublishCourse(
        courses_pb2.PublishCourseRequest(course_id=course.id), metadata=who.metadata()
    )
    return reply.course, added


async def enroll(who: Caller, course_id: str) -> learning_pb2.EnrollInCourseResponse:
    return await learning(who.channel).EnrollInCourse(
        learning_pb2.EnrollInCourseRequest(course_id=course_id), metadata=who.metadata()
    )
