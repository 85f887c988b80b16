"""Projection integrity: 2,000 commands from 20 concurrent clients while the projector is
killed and restarted twice; afterwards the read models equal a fresh rebuild and their counts
match PostgreSQL exactly."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import grpc

from learnflow.projections.projector import Projector
from learnflow.projections.registry import all_projections
from learnflow.server import Backend
from learnflow.settings import Settings
from learnflow.v1 import courses_pb2, learning_pb2
from tests.commands_support import Pg, article, courses, enroll, learning, published_course
from tests.read_support import (
    comment,
    complete,
    settle,
    snapshot,
    start_projector,
    stop_projector,
)
from tests.support import Caller

CLIENTS = 20
COMMANDS = 2000


async def client_run(
    who: Caller, course_lessons: list[tuple[str, list[str]]], count: int, seed: int, done: list[int]
) -> None:
    rng = random.Random(seed)
    enrolled: set[str] = set()
    for _ in range(count):
        course_id, lessons = rng.choice(course_lessons)
        lesson_id = rng.choice(lessons)
        roll = rng.random()
        try:
            if course_id not in enrolled:
                enrolled.add(course_id)
                await enroll(who, course_id)
            elif roll < 0.5:
                await complete(who, course_id, lesson_id)
            elif roll < 0.85:
                await comment(who, course_id, lesson_id, f"note {rng.random():.6f}")
            else:
                enrolled.discard(course_id)
                await learning(who.channel).WithdrawEnrollment(
                    learning_pb2.WithdrawEnrollmentRequest(course_id=course_id),
                    metadata=who.metadata(),
                )
        except grpc.aio.AioRpcError as exc:
            # Refusals are part of the mix (not enrolled, already enrolled, ...).
            assert exc.code() in {
                grpc.StatusCode.FAILED_PRECONDITION,
                grpc.StatusCode.ALREADY_EXISTS,
                grpc.StatusCode.NOT_FOUND,
                grpc.StatusCode.PERMISSION_DENIED,
            }, exc.details()
        done[0] += 1


async def test_read_models_match_postgres_and_a_rebuild_after_projector_restarts(
    channel: grpc.aio.Channel,
    instructor: Caller,
    backend: Backend,
    postgres_url: str,
    settings: Settings,
) -> None:
    started = time.perf_counter()
    course_lessons: list[tuple[str, list[str]]] = []
    for _ in range(8):
        course, lessons = await published_course(
            instructor, lessons=[article(), article(), article()]
        )
        course_lessons.append((course.id, [lesson.id for lesson in lessons]))
    clients = [await Caller.register(channel) for _ in range(CLIENTS)]
    done = [0]
    runs = [
        asyncio.create_task(client_run(c, course_lessons, COMMANDS // CLIENTS, i, done))
        for i, c in enumerate(clients)
    ]
    # Kill the projector twice mid-run, restarting it after a while each time.
    restarts = 0
    for low, high in ((0.2, 0.35), (0.6, 0.75)):
        while done[0] < COMMANDS * low:  # noqa: ASYNC110 - progress is a plain counter
            await asyncio.sleep(0.02)
        await stop_projector(backend)
        while done[0] < COMMANDS * high:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        start_projector(backend)
        restarts += 1
    await asyncio.gather(*runs)
    # A lesson added while people are enrolled changes everyone's lesson count.
    extra = await courses(channel).CreateLesson(
        courses_pb2.CreateLessonRequest(course_id=course_lessons[0][0], lesson=article()),
        metadata=instructor.metadata(),
    )
    assert extra.lesson.id
    assert done[0] == COMMANDS and restarts == 2
    await settle(postgres_url, backend.store, timeout_s=60)

    db = await backend.store.active(max_age_s=0)
    pg = Pg(postgres_url)
    await _counts_match(db, pg)

    live = await snapshot(db)
    async with _paused(backend):
        projector = Projector(settings.postgres_url, backend.store, all_projections())
        generation, applied, seconds = await projector.rebuild()
        rebuilt = await snapshot(backend.store.database(generation))
    assert applied == await pg.value("SELECT count(*) FROM events")
    assert rebuilt.keys() == live.keys()
    for name in live:
        assert rebuilt[name] == live[name], name
    elapsed = time.perf_counter() - started
    print(f"\nintegrity: {COMMANDS} commands, {applied} events, rebuild {seconds:.1f}s,")
    print(f"total {elapsed:.1f}s")


class _paused:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    async def __aenter__(self) -> None:
        await stop_projector(self.backend)

    async def __aexit__(self, *exc: object) -> None:
        start_projector(self.backend)


async def _counts_match(db: Any, pg: Pg) -> None:
    assert await db["users"].count_documents({}) == await pg.value("SELECT count(*) FROM users")
    assert await db["audit_events"].count_documents({}) == await pg.value(
        "SELECT count(*) FROM audit_log"
    )
    assert await db["comments"].count_documents({}) == await pg.value(
        "SELECT count(*) FROM comments"
    )
    assert await db["lessons"].count_documents({"deleted": False}) == await pg.value(
        "SELECT count(*) FROM lessons"
    )
    pg_courses = {
        str(row[0]): (row[1], row[2], row[3])
        for row in await pg.rows(
            "SELECT id, state, lesson_count, active_enrollment_count FROM courses"
        )
    }
    read_courses = {
        doc["_id"]: (doc["state"], doc["lesson_count"], doc["active_enrollment_count"])
        async for doc in db["courses"].find({})
        if not doc.get("deleted")  # a deleted course's tombstone: its row is gone
    }
    assert {
        k: (v, pg_courses.get(k)) for k, v in read_courses.items() if v != pg_courses.get(k)
    } == {}
    assert read_courses.keys() == pg_courses.keys()
    pg_enrollments = {
        f"{row[0]}:{row[1]}": (row[2], row[3])
        for row in await pg.rows(
            "SELECT e.user_id, e.course_id, e.state, coalesce(("
            "  SELECT count(*) FROM lesson_completions lc"
            "  WHERE lc.user_id = e.user_id AND lc.course_id = e.course_id), 0)"
            " FROM enrollments e"
        )
    }
    read_progress = {
        doc["_id"]: (doc["state"], len(doc["completed_lesson_ids"]))
        async for doc in db["progress"].find({})
    }
    assert read_progress == pg_enrollments
    dashboards = {
        f"{doc['_id']}:{course_id}": (entry["state"], len(entry["completed_lesson_ids"]))
        async for doc in db["dashboards"].find({})
        for course_id, entry in doc["courses"].items()
    }
    assert dashboards == pg_enrollments
