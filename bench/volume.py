"""Benchmark: the read side at volume (not a test).

For each scale (1 = 2,000 courses of which ~20% published, 20,000 lessons, 5,000 users, 20,000
enrollments, ~40,000 lesson completions, with every event the commands would have written,
audit records included) it:

1. creates a fresh PostgreSQL database `learnflow_volume_<rand>` with the migrations and
   seeds it by COPY: the rows of users, courses, lessons, enrollments and lesson completions,
   and the event log holding the events the commands would have appended for them (payloads
   shaped as `learnflow.events` types them and the commands build them);
2. times `Projector.rebuild()` into a fresh read-store database (events/s);
3. starts a real server (`learnflow.server.build`, as `learnflow_app`, projector running) and
   measures p50/p99 of GetCourse, GetLesson (enrolled student), ListCourses (first page and
   the fourth, following next_page_token three times) and ListMyEnrollments (the dashboard),
   each sequentially and with `--concurrency` callers; with `--query-cache-entries 0,500`
   once per query-cache size (a server each, one after the other, same data);
4. measures the projection lag under a steady `--rate` commands/s for `--lag-seconds`:
   enrollments and lesson completions by seeded students, lag = time from the command's
   response to the first read carrying its consistency token (GetCourseProgress) that answers;
5. drops what it created.

It prints one markdown table per read store (`--mongo-url`, repeatable), one column per scale
and the ratio of the largest scale to the smallest (the baseline, measured in the same run).

    python bench/volume.py --scales 0.1,1              # a quick run, a couple of minutes
    python bench/volume.py                             # scales 1 and 10 on FerretDB/PostgreSQL
    python bench/volume.py --scales 1,10,100 --max-scale 100

Every step is bounded (`--step-timeout`); a step that runs over is reported as "over N s" and
the rest of that scale is skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import math
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import bson
import grpc
import psycopg
from pymongo import AsyncMongoClient

from learnflow.migrations import upgrade_to_head
from learnflow.projections.catalog import COURSE_FIELDS
from learnflow.projections.projector import Projector, libpq_url
from learnflow.projections.registry import all_projections
from learnflow.projections.store import ReadStore
from learnflow.server import Backend, build
from learnflow.settings import Settings
from learnflow.v1 import (
    courses_pb2,
    courses_pb2_grpc,
    identity_pb2,
    identity_pb2_grpc,
    learning_pb2,
    learning_pb2_grpc,
)

PASSWORD = "volume-bench-password"
DEFAULT_PG = os.environ.get(
    "LEARNFLOW_POSTGRES_MIGRATION_URL", "postgresql://postgres@127.0.0.1:55432/learnflow"
)
DEFAULT_MONGO = "mongodb://127.0.0.1:57018/"
LESSONS_PER_COURSE = 10
QUIZ_POSITIONS = (5, 10)
VIDEO_POSITIONS = (3,)
EXTRA_GENERATIONS = 4  # read-store databases dropped at the end: <name>_g1 .. _g4
Md = tuple[tuple[str, str], ...]


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# --------------------------------------------------------------------------------------------
# The dataset: a world model first, then its rows and its events.
# --------------------------------------------------------------------------------------------


@dataclass
class User:
    id: str
    email: str
    name: str
    role: str
    created_at: str


@dataclass
class Lesson:
    id: str
    title: str
    position: int
    kind: str
    created_at: str

    def content(self) -> dict[str, Any]:
        if self.kind == "quiz":
            return {
                "pass_threshold_percent": 70,
                "questions": [
                    {
                        "id": f"q{n}",
                        "prompt": f"Which statement about topic {n} holds?",
                        "choices": ["the first", "the second", "the third", "none"],
                        "correct_choice_indexes": [n % 4],
                    }
                    for n in range(4)
                ],
            }
        if self.kind == "video":
            return {"url": f"https://videos.example.com/{self.id}.mp4", "duration_seconds": 600}
        words = 120 + int(self.id[:2], 16) % 140
        return {"markdown": f"# {self.title}\n\n" + "Some explanatory text. " * (words // 3)}


@dataclass
class Course:
    id: str
    owner: User
    title: str
    slug: str
    summary: str
    tags: list[str]
    level: str
    final_state: str  # draft | published | archived
    created_at: str
    published_at: str | None = None
    archived_at: str | None = None
    lessons: list[Lesson] = field(default_factory=list)
    enrollments: int = 0


@dataclass
class Enrollment:
    user: User
    course: Course
    enrolled_at: str
    completions: list[tuple[Lesson, str]] = field(default_factory=list)


@dataclass
class World:
    users: list[User]
    courses: list[Course]
    enrollments: list[Enrollment]
    ops: list[tuple[str, int, int]]  # (kind, index, sub-index) in the order they happened
    end: dt.datetime


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def build_world(scale: float, seed: int) -> World:
    rng = random.Random(seed)
    clock = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)

    def tick(max_ms: int = 4000) -> str:
        nonlocal clock
        clock += dt.timedelta(milliseconds=rng.randint(1, max_ms))
        return clock.isoformat()

    n_users = max(50, round(5000 * scale))
    n_courses = max(20, round(2000 * scale))
    n_enrollments = max(200, round(20000 * scale))
    n_instructors = max(5, n_users // 50)
    ops: list[tuple[str, int, int]] = []
    users: list[User] = []
    for i in range(n_users):
        role = "instructor" if i < n_instructors else "student"
        user_id = _uuid(rng)
        users.append(User(user_id, f"v{i}-{user_id[:8]}@volume.example", f"Learner {i}", role, ""))
        users[-1].created_at = tick()
        ops.append(("user", i, 0))
    instructors, students = users[:n_instructors], users[n_instructors:]
    topics = ["python", "go", "sql", "css", "rust", "data", "ml", "ops", "web", "security"]
    courses: list[Course] = []
    for c in range(n_courses):
        roll = rng.random()
        final = "published" if roll < 0.2 else "draft" if roll < 0.25 else "archived"
        topic = rng.choice(topics)
        course = Course(
            id=_uuid(rng),
            owner=rng.choice(instructors),
            title=f"{topic.title()} in practice, part {c}",
            slug=f"{topic}-in-practice-{c}",
            summary=f"A hands-on course about {topic}. " * 6,
            tags=sorted(rng.sample(topics, 2)),
            level=rng.choice(["beginner", "intermediate", "advanced"]),
            final_state=final,
            created_at=tick(),
        )
        for position in range(1, LESSONS_PER_COURSE + 1):
            kind = (
                "quiz"
                if position in QUIZ_POSITIONS
                else "video"
                if position in VIDEO_POSITIONS
                else "article"
            )
            course.lessons.append(
                Lesson(_uuid(rng), f"Lesson {position}: {topic}", position, kind, tick(500))
            )
        if final != "draft":
            course.published_at = tick()
        courses.append(course)
        ops.append(("course", c, 0))
    open_courses = [c for c in courses if c.final_state != "draft"]
    enrollments: list[Enrollment] = []
    pairs: set[tuple[str, str]] = set()
    pending: list[tuple[int, int]] = []  # (enrollment, completion) not yet done
    while len(enrollments) < n_enrollments:
        user, course = rng.choice(students), rng.choice(open_courses)
        if (user.id, course.id) in pairs:
            continue
        pairs.add((user.id, course.id))
        enrollment = Enrollment(user, course, tick())
        course.enrollments += 1
        index = len(enrollments)
        enrollments.append(enrollment)
        ops.append(("enroll", index, 0))
        articles = [lesson for lesson in course.lessons if lesson.kind == "article"]
        for k in range(rng.choice([0, 1, 1, 2, 2, 3, 3, 4])):
            enrollment.completions.append((articles[k], ""))
            pending.append((index, k))
        # Learners come back later: a couple of earlier completions happen now.
        for _ in range(min(2, len(pending))):
            e, k = pending.pop(rng.randrange(len(pending)))
            lesson, _ = enrollments[e].completions[k]
            enrollments[e].completions[k] = (lesson, tick())
            ops.append(("complete", e, k))
    for e, k in pending:
        lesson, _ = enrollments[e].completions[k]
        enrollments[e].completions[k] = (lesson, tick())
        ops.append(("complete", e, k))
    for c, course in enumerate(courses):
        if course.final_state == "archived":
            course.archived_at = tick()
            ops.append(("archive", c, 0))
    return World(users, courses, enrollments, ops, clock)


EventRow = tuple[str, str, str, str, str]  # type, aggregate type, aggregate id, payload, at


class EventWriter:
    """The world's events in the order they happened, as the commands would have emitted
    them (state-carrying payloads; an audit record before each command's events)."""

    def __init__(self, world: World, seed: int) -> None:
        self.world = world
        self.rng = random.Random(seed + 1)
        self.audit_id = 0
        self.lesson_count: dict[str, int] = {}
        self.active: dict[str, int] = {}
        self.state: dict[str, str] = {}
        self.updated: dict[str, str] = {}

    def audit(self, actor: str, action: str, resource: str, at: str) -> EventRow:
        self.audit_id += 1
        payload = {
            "id": self.audit_id,
            "actor_id": actor,
            "action": action,
            "resource": resource,
            "outcome": "success",
            "request_id": uuid.UUID(int=self.rng.getrandbits(128)).hex,
            "client_address": "127.0.0.1",
            "occurred_at": at,
        }
        return ("audit.recorded", "audit", str(self.audit_id), json.dumps(payload), at)

    def course_payload(self, course: Course, at: str) -> str:
        self.updated[course.id] = at
        published = course.published_at if self.state[course.id] != "draft" else None
        return json.dumps(
            {
                "id": course.id,
                "owner_id": course.owner.id,
                "owner_name": course.owner.name,
                "title": course.title,
                "slug": course.slug,
                "summary": course.summary,
                "tags": course.tags,
                "level": course.level,
                "state": self.state[course.id],
                "capacity": 0,
                "enrollment_open_at": None,
                "enrollment_close_at": None,
                "lesson_count": self.lesson_count[course.id],
                "active_enrollment_count": self.active[course.id],
                "created_at": course.created_at,
                "updated_at": at,
                "published_at": published,
            }
        )

    def events(self) -> Iterator[EventRow]:
        world = self.world
        for kind, index, sub in world.ops:
            if kind == "user":
                user = world.users[index]
                yield self.audit(user.id, "user.register", f"users/{user.id}", user.created_at)
                payload = {
                    "id": user.id,
                    "email": user.email,
                    "display_name": user.name,
                    "role": user.role,
                    "disabled": False,
                    "created_at": user.created_at,
                }
                yield ("user.registered", "user", user.id, json.dumps(payload), user.created_at)
            elif kind == "course":
                yield from self._course(world.courses[index])
            elif kind == "enroll":
                yield from self._enroll(world.enrollments[index])
            elif kind == "complete":
                yield from self._complete(world.enrollments[index], sub)
            elif kind == "archive":
                course = world.courses[index]
                at = course.archived_at or course.created_at
                self.state[course.id] = "archived"
                yield self.audit(course.owner.id, "course.archive", f"courses/{course.id}", at)
                yield ("course.archived", "course", course.id, self.course_payload(course, at), at)

    def _course(self, course: Course) -> Iterator[EventRow]:
        owner, at = course.owner.id, course.created_at
        self.state[course.id], self.lesson_count[course.id], self.active[course.id] = "draft", 0, 0
        yield self.audit(owner, "course.create", f"courses/{course.id}", at)
        yield ("course.created", "course", course.id, self.course_payload(course, at), at)
        outline: list[dict[str, Any]] = []
        for lesson in course.lessons:
            at = lesson.created_at
            outline.append(
                {
                    "id": lesson.id,
                    "title": lesson.title,
                    "position": lesson.position,
                    "content_type": lesson.kind,
                }
            )
            self.lesson_count[course.id] = lesson.position
            resource = f"courses/{course.id}/lessons/{lesson.id}"
            yield self.audit(owner, "lesson.create", resource, at)
            payload = {
                "id": lesson.id,
                "course_id": course.id,
                "course_title": course.title,
                "title": lesson.title,
                "position": lesson.position,
                "content_type": lesson.kind,
                "content": lesson.content(),
                "created_at": at,
                "updated_at": at,
                "outline": [dict(entry) for entry in outline],
            }
            yield ("lesson.created", "lesson", lesson.id, json.dumps(payload), at)
            yield (
                "course.counts_changed",
                "course",
                course.id,
                self.course_payload(course, at),
                at,
            )
        if course.published_at is not None:
            at = course.published_at
            self.state[course.id] = "published"
            yield self.audit(owner, "course.publish", f"courses/{course.id}", at)
            yield ("course.published", "course", course.id, self.course_payload(course, at), at)

    def _enroll(self, enrollment: Enrollment) -> Iterator[EventRow]:
        course, user, at = enrollment.course, enrollment.user, enrollment.enrolled_at
        self.active[course.id] += 1
        yield self.audit(user.id, "enrollment.enroll", f"courses/{course.id}/enrollments/me", at)
        payload = {
            "course_id": course.id,
            "user_id": user.id,
            "state": "active",
            "enrolled_at": at,
            "updated_at": at,
            "completed_at": None,
            "active_enrollment_count": self.active[course.id],
        }
        aggregate = f"{course.id}:{user.id}"
        yield ("enrollment.activated", "enrollment", aggregate, json.dumps(payload), at)
        yield ("course.counts_changed", "course", course.id, self.course_payload(course, at), at)

    def _complete(self, enrollment: Enrollment, k: int) -> Iterator[EventRow]:
        course, user = enrollment.course, enrollment.user
        lesson, at = enrollment.completions[k]
        done = {lesson.id for lesson, when in enrollment.completions if when and when <= at}
        resource = f"courses/{course.id}/lessons/{lesson.id}"
        yield self.audit(user.id, "lesson.complete", resource, at)
        payload = {
            "user_id": user.id,
            "course_id": course.id,
            "lesson_id": lesson.id,
            "completed_at": at,
            "completed_lesson_ids": [e.id for e in course.lessons if e.id in done],
            "lesson_count": len(course.lessons),
        }
        aggregate = f"{course.id}:{user.id}"
        yield ("progress.lesson_completed", "enrollment", aggregate, json.dumps(payload), at)


async def seed(postgres_url: str, world: World, seed_value: int) -> int:
    """COPY the world's rows and events into `postgres_url` (the owner's); returns events."""
    password_hash = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4))
    writer = EventWriter(world, seed_value)
    count = 0
    async with await psycopg.AsyncConnection.connect(libpq_url(postgres_url)) as conn:
        async with conn.cursor() as cur:
            async with cur.copy(
                "COPY users (id, email, display_name, role, password_hash, disabled,"
                " token_version, created_at, updated_at) FROM STDIN"
            ) as copy:
                for u in world.users:
                    await copy.write_row(
                        (
                            u.id,
                            u.email,
                            u.name,
                            u.role,
                            password_hash,
                            False,
                            0,
                            u.created_at,
                            u.created_at,
                        )
                    )
            async with cur.copy(
                "COPY courses (id, owner_id, title, slug, summary, tags, level, state, capacity,"
                " lesson_count, active_enrollment_count, created_at, updated_at, published_at)"
                " FROM STDIN"
            ) as copy:
                for c in world.courses:
                    await copy.write_row(
                        (
                            c.id,
                            c.owner.id,
                            c.title,
                            c.slug,
                            c.summary,
                            c.tags,
                            c.level,
                            c.final_state,
                            0,
                            len(c.lessons),
                            c.enrollments,
                            c.created_at,
                            c.archived_at or c.published_at or c.created_at,
                            c.published_at,
                        )
                    )
            async with cur.copy(
                "COPY lessons (id, course_id, title, position, content_type, content,"
                " created_at, updated_at) FROM STDIN"
            ) as copy:
                for c in world.courses:
                    for lesson in c.lessons:
                        await copy.write_row(
                            (
                                lesson.id,
                                c.id,
                                lesson.title,
                                lesson.position,
                                lesson.kind,
                                json.dumps(lesson.content()),
                                lesson.created_at,
                                lesson.created_at,
                            )
                        )
            async with cur.copy(
                "COPY enrollments (course_id, user_id, state, enrolled_at, updated_at) FROM STDIN"
            ) as copy:
                for e in world.enrollments:
                    last = max([e.enrolled_at] + [when for _, when in e.completions])
                    await copy.write_row((e.course.id, e.user.id, "active", e.enrolled_at, last))
            async with cur.copy(
                "COPY lesson_completions (user_id, course_id, lesson_id, completed_at) FROM STDIN"
            ) as copy:
                for e in world.enrollments:
                    for lesson, when in e.completions:
                        await copy.write_row((e.user.id, e.course.id, lesson.id, when))
            async with cur.copy(
                "COPY events (event_type, aggregate_type, aggregate_id, payload, occurred_at)"
                " FROM STDIN"
            ) as copy:
                for row in writer.events():
                    await copy.write_row(row)
                    count += 1
            # The audit records are in the event log only; live audit ids continue after them.
            await cur.execute(
                "SELECT setval(pg_get_serial_sequence('audit_log', 'id'), %s)",
                (writer.audit_id,),
            )
        await conn.commit()
        await conn.execute("ANALYZE")
    return count


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------


@dataclass
class Figure:
    """One cell: a latency distribution, a number, or why there is none."""

    p50_ms: float | None = None
    p99_ms: float | None = None
    value: float | None = None
    unit: str = ""
    note: str = ""

    def text(self) -> str:
        if self.note:
            return self.note
        if self.value is not None and not self.unit:
            return f"{self.value:,.0f}"
        if self.value is not None:
            return f"{self.value:,.1f} {self.unit}"
        assert self.p50_ms is not None and self.p99_ms is not None
        return f"{_ms(self.p50_ms)} / {_ms(self.p99_ms)}"

    def key(self) -> float | None:
        return self.value if self.value is not None else self.p50_ms


def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.1f} ms"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


def distribution(samples: list[float]) -> Figure:
    return Figure(p50_ms=percentile(samples, 0.5) * 1000, p99_ms=percentile(samples, 0.99) * 1000)


@dataclass
class Probe:
    """A seeded student logged in through the API, with what the bench knows of them."""

    user: User
    token: str = ""
    enrolled: dict[str, set[str]] = field(default_factory=dict)  # course id -> completed ids

    def md(self, consistency_token: str = "") -> Md:
        md: Md = (("authorization", f"Bearer {self.token}"),)
        if consistency_token:
            md += (("x-consistency-token", consistency_token),)
        return md


@dataclass
class Scenario:
    world: World
    probes: list[Probe]
    published: list[Course]
    by_id: dict[str, Course]


def scenario(world: World, n_probes: int, seed_value: int) -> Scenario:
    rng = random.Random(seed_value + 3)
    published = [c for c in world.courses if c.final_state == "published"]
    per_user: dict[str, list[Enrollment]] = {}
    for e in world.enrollments:
        if e.course.final_state == "published":
            per_user.setdefault(e.user.id, []).append(e)
    candidates = sorted(per_user, key=lambda u: -len(per_user[u]))[: n_probes * 3]
    chosen = rng.sample(candidates, min(n_probes, len(candidates)))
    users = {u.id: u for u in world.users}
    probes = []
    for user_id in chosen:
        probe = Probe(users[user_id])
        for e in per_user[user_id]:
            probe.enrolled[e.course.id] = {lesson.id for lesson, _ in e.completions}
        probes.append(probe)
    return Scenario(world, probes, published, {c.id: c for c in world.courses})


async def timed(
    calls: int,
    concurrency: int,
    call: Callable[[int], Awaitable[object]],
) -> list[float]:
    samples: list[float] = []
    queue = iter(range(calls))

    async def worker() -> None:
        for i in queue:
            started = time.perf_counter()
            await call(i)
            samples.append(time.perf_counter() - started)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return samples


async def measure_reads(
    channel: grpc.aio.Channel, scn: Scenario, calls: int, concurrency: int, timeout_s: float
) -> dict[str, Figure]:
    catalog = courses_pb2_grpc.CatalogServiceStub(channel)
    progress = learning_pb2_grpc.ProgressServiceStub(channel)
    rng = random.Random(11)
    rpc_timeout = min(60.0, timeout_s)

    async def get_course(i: int) -> object:
        course = scn.published[rng.randrange(len(scn.published))]
        return await catalog.GetCourse(
            courses_pb2.GetCourseRequest(course_id=course.id), timeout=rpc_timeout
        )

    async def get_lesson(i: int) -> object:
        probe = scn.probes[i % len(scn.probes)]
        course = scn.by_id[rng.choice(sorted(probe.enrolled))]
        lesson = rng.choice(course.lessons)
        return await catalog.GetLesson(
            courses_pb2.GetLessonRequest(course_id=course.id, lesson_id=lesson.id),
            metadata=probe.md(),
            timeout=rpc_timeout,
        )

    async def first_page(i: int) -> object:
        return await catalog.ListCourses(courses_pb2.ListCoursesRequest(), timeout=rpc_timeout)

    token = ""
    for _ in range(3):
        page = await catalog.ListCourses(
            courses_pb2.ListCoursesRequest(page_token=token), timeout=rpc_timeout
        )
        token = page.next_page_token

    async def fourth_page(i: int) -> object:
        return await catalog.ListCourses(
            courses_pb2.ListCoursesRequest(page_token=token), timeout=rpc_timeout
        )

    async def dashboard(i: int) -> object:
        probe = scn.probes[i % len(scn.probes)]
        return await progress.ListMyEnrollments(
            learning_pb2.ListMyEnrollmentsRequest(), metadata=probe.md(), timeout=rpc_timeout
        )

    reads: list[tuple[str, Callable[[int], Awaitable[object]]]] = [
        ("GetCourse (published)", get_course),
        ("GetLesson (enrolled student)", get_lesson),
        ("ListCourses, first page", first_page),
        ("ListCourses, 4th page", fourth_page if token else first_page),
        ("ListMyEnrollments (dashboard)", dashboard),
    ]
    figures: dict[str, Figure] = {}
    for name, call in reads:
        for label, workers in (("sequential", 1), (f"{concurrency} callers", concurrency)):
            key = f"{name}, {label}"
            try:
                async with asyncio.timeout(timeout_s):
                    await call(0)  # warm-up
                    samples = await timed(calls, workers, call)
                figures[key] = distribution(samples)
            except TimeoutError:
                figures[key] = Figure(note=f"over {timeout_s:.0f} s")
            except grpc.aio.AioRpcError as exc:
                figures[key] = Figure(note=f"failed: {exc.code().name}")
            say(f"  {key}: {figures[key].text()}")
    return figures


async def measure_lag(
    channel: grpc.aio.Channel,
    scn: Scenario,
    rate: float,
    seconds: float,
    limit_s: float,
    list_meanwhile: bool = False,
) -> dict[str, Figure]:
    """Commands at `rate`/s for `seconds` (open loop); each one's read-back lag. With
    `list_meanwhile`, one caller reads the catalog's first page in a loop all along (the
    enrollments rewrite course documents, so they keep invalidating cached pages)."""
    learning = learning_pb2_grpc.LearningServiceStub(channel)
    listings: list[float] = []
    sending_done = asyncio.Event()

    async def lister() -> None:
        catalog = courses_pb2_grpc.CatalogServiceStub(channel)
        while not sending_done.is_set():
            began = time.perf_counter()
            await catalog.ListCourses(courses_pb2.ListCoursesRequest(), timeout=60)
            listings.append(time.perf_counter() - began)

    progress = learning_pb2_grpc.ProgressServiceStub(channel)
    rng = random.Random(13)
    lags: list[tuple[str, float]] = []
    failures: list[str] = []
    busy: set[tuple[str, str]] = set()  # (user, course) with a command in flight

    def next_command() -> tuple[str, Probe, Course, Lesson | None] | None:
        for _ in range(50):
            probe = rng.choice(scn.probes)
            if rng.random() < 0.5:
                course = rng.choice(scn.published)
                if course.id not in probe.enrolled and (probe.user.id, course.id) not in busy:
                    return "enroll", probe, course, None
            elif probe.enrolled:
                course = scn.by_id[rng.choice(sorted(probe.enrolled))]
                todo = [
                    lesson
                    for lesson in course.lessons
                    if lesson.kind == "article" and lesson.id not in probe.enrolled[course.id]
                ]
                if todo and (probe.user.id, course.id) not in busy:
                    return "complete", probe, course, todo[0]
        return None

    async def one(kind: str, probe: Probe, course: Course, lesson: Lesson | None) -> None:
        key = (probe.user.id, course.id)
        busy.add(key)
        try:
            if kind == "enroll":
                enrolled = await learning.EnrollInCourse(
                    learning_pb2.EnrollInCourseRequest(course_id=course.id),
                    metadata=probe.md(),
                    timeout=30,
                )
                token = enrolled.consistency_token
                probe.enrolled[course.id] = set()
            else:
                assert lesson is not None
                completed = await learning.CompleteLesson(
                    learning_pb2.CompleteLessonRequest(course_id=course.id, lesson_id=lesson.id),
                    metadata=probe.md(),
                    timeout=30,
                )
                token = completed.consistency_token
                probe.enrolled[course.id].add(lesson.id)
            answered = time.perf_counter()
            while True:
                try:
                    await progress.GetCourseProgress(
                        learning_pb2.GetCourseProgressRequest(course_id=course.id),
                        metadata=probe.md(token),
                        timeout=30,
                    )
                    break
                except grpc.aio.AioRpcError as exc:
                    waited = time.perf_counter() - answered
                    if exc.code() != grpc.StatusCode.UNAVAILABLE or waited > limit_s:
                        raise
            lags.append((kind, time.perf_counter() - answered))
        except grpc.aio.AioRpcError as exc:
            failures.append(f"{kind}: {exc.code().name}")
        finally:
            busy.discard(key)

    tasks: list[asyncio.Task[None]] = []
    reader = asyncio.create_task(lister()) if list_meanwhile else None
    started = time.perf_counter()
    for i in range(int(rate * seconds)):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        command = next_command()
        if command is not None:
            tasks.append(asyncio.create_task(one(*command)))
    sending = time.perf_counter() - started
    sending_done.set()
    if reader is not None:
        await reader
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(limit_s + 60):
            await asyncio.gather(*tasks)
    for task in tasks:
        if not task.done():
            task.cancel()
            failures.append("no answer")
    achieved = len(tasks) / sending
    samples = [lag for _, lag in lags]
    enroll = [lag for kind, lag in lags if kind == "enroll"]
    figures = {
        "commands sent (rate achieved/s)": Figure(value=achieved, unit="/s"),
        "read-your-writes lag p50 / p99": distribution(samples) if samples else Figure(note="-"),
        "enrollment read-back, max": (
            Figure(value=max(enroll) * 1000, unit="ms") if enroll else Figure(note="-")
        ),
        "commands whose lag > 2 s": Figure(
            note=f"{sum(lag > 2 for lag in samples) + len(failures)} of {len(tasks)}"
            + (f" ({len(failures)} failed)" if failures else "")
        ),
    }
    if listings:
        figures["ListCourses, first page, sequential, during the commands"] = distribution(listings)
    for key, figure in figures.items():
        say(f"  {key}: {figure.text()}")
    if failures:
        say(f"  failures: {sorted(set(failures))}")
    return figures


# --------------------------------------------------------------------------------------------
# One scale on one read store
# --------------------------------------------------------------------------------------------


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


def _as_role(url: str, role: str) -> str:
    scheme, _, rest = url.partition("://")
    _, _, host_and_path = rest.rpartition("@")
    return f"{scheme}://{role}@{host_and_path}"


@contextlib.asynccontextmanager
async def volume_database(owner_url: str) -> AsyncIterator[str]:
    name = f"learnflow_volume_{uuid.uuid4().hex[:8]}"
    admin = _with_database(libpq_url(owner_url), "postgres")
    async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
        await conn.execute(f'CREATE DATABASE "{name}"')
    url = _with_database(owner_url, name)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    try:
        await asyncio.to_thread(upgrade_to_head, url)
        yield url
    finally:
        async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def drop_read_store(mongo_url: str, name: str) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongo_url, serverSelectionTimeoutMS=3000
    )
    try:
        for generation in range(1, EXTRA_GENERATIONS + 1):
            await client.drop_database(f"{name}_g{generation}")
        await client.drop_database(f"{name}_meta")
    finally:
        await client.close()


async def collection_stats(store: ReadStore) -> dict[str, tuple[int, float]]:
    """Documents and mean BSON size (sampled) per collection of the active generation."""
    db = await store.active(max_age_s=0)
    stats: dict[str, tuple[int, float]] = {}
    for name in sorted(await db.list_collection_names()):
        count = await db[name].count_documents({})
        sample = await db[name].find({}).limit(200).to_list()
        size = statistics.mean(len(bson.encode(doc)) for doc in sample) if sample else 0.0
        stats[name] = (count, size)
    return stats


# What a catalog page needs of a course document (`course_message` and the keyset keys);
# everything else (the outline above all) a slim listing collection would leave out.
LISTING_FIELDS = [*COURSE_FIELDS, "sort_key", "title_key", "popularity_key", "search_text"]


async def measure_listing_shapes(
    client: AsyncMongoClient[dict[str, Any]], store: ReadStore, repeat: int
) -> dict[str, Figure]:
    """ListCourses' two store calls on the real `courses` collection (every state, outlines
    included), against the same calls on a scratch collection holding only the published
    courses and only the fields a page shows: what a slimmer listing model would save on
    FerretDB, which decodes every matching document and sorts in Go. Medians of `repeat`."""
    db = client[(await store.active(max_age_s=0)).name]
    courses = db["courses"]
    published = {"state": "published"}
    scratch_db = client[f"{store.name}_listing"]
    slim = scratch_db["listing"]
    docs = await courses.find(published, {f: 1 for f in LISTING_FIELDS}).to_list()
    await slim.insert_many(docs)
    await slim.create_index([("sort_key", -1)])
    try:
        page = [("sort_key", -1)]
        ops: dict[str, Callable[[], Awaitable[object]]] = {
            "count published (courses)": lambda: courses.count_documents(published),
            "find published, whole documents (courses)": lambda: courses.find(published).to_list(),
            "find published, without outline (courses)": lambda: courses.find(
                published, {"outline": 0}
            ).to_list(),
            "first page: find + sort + limit 21, without outline (courses, as now)": lambda: (
                courses.find(published, {"outline": 0}).sort(page).limit(21).to_list()
            ),
            "count (slim listing)": lambda: slim.count_documents({}),
            "find all (slim listing)": lambda: slim.find({}).to_list(),
            "first page: find + sort + limit 21 (slim listing)": lambda: (
                slim.find({}).sort(page).limit(21).to_list()
            ),
        }
        figures: dict[str, Figure] = {
            "published courses, mean BSON bytes: whole / without outline / slim": Figure(
                note=" / ".join(
                    f"{statistics.mean(len(bson.encode(d)) for d in sample):,.0f} B"
                    for sample in (
                        await courses.find(published).to_list(),
                        await courses.find(published, {"outline": 0}).to_list(),
                        docs,
                    )
                )
                + f" ({len(docs)} courses)"
            )
        }
        for name, op in ops.items():
            samples = []
            for _ in range(repeat):
                began = time.perf_counter()
                await op()
                samples.append(time.perf_counter() - began)
            figures[f"store: {name}"] = distribution(samples)
            say(f"  store: {name}: {figures[f'store: {name}'].text()}")
        return figures
    finally:
        await client.drop_database(scratch_db.name)


async def login(channel: grpc.aio.Channel, probes: list[Probe]) -> None:
    identity = identity_pb2_grpc.IdentityServiceStub(channel)
    for probe in probes:
        session = await identity.CreateSession(
            identity_pb2.CreateSessionRequest(email=probe.user.email, password=PASSWORD),
            timeout=30,
        )
        probe.token = session.access_token


async def run_scale(
    args: argparse.Namespace, mongo_url: str, scale: float
) -> tuple[dict[str, Figure], dict[str, tuple[int, float]]]:
    figures: dict[str, Figure] = {}
    limit = args.step_timeout
    started = time.perf_counter()
    world = build_world(scale, args.seed)
    say(
        f"scale {scale:g}: {len(world.users):,} users, {len(world.courses):,} courses,"
        f" {len(world.courses) * LESSONS_PER_COURSE:,} lessons,"
        f" {len(world.enrollments):,} enrollments"
    )
    stats: dict[str, tuple[int, float]] = {}
    async with volume_database(args.postgres_url) as owner_url:
        events = await seed(owner_url, world, args.seed)
        figures["events in the log"] = Figure(value=events, unit="")
        say(f"  seeded {events:,} events in {time.perf_counter() - started:.1f}s")
        name = f"lfvolume_{uuid.uuid4().hex[:8]}"
        store = ReadStore.connect(mongo_url, name)
        try:
            try:
                async with asyncio.timeout(limit):
                    projector = Projector(owner_url, store, all_projections())
                    _, applied, seconds = await projector.rebuild()
            except TimeoutError:
                figures["rebuild"] = Figure(note=f"over {limit:.0f} s")
                say(f"  rebuild: over {limit:.0f} s; skipping the rest of this scale")
                return figures, stats
            figures["rebuild"] = Figure(value=seconds, unit="s")
            figures["rebuild events/s"] = Figure(value=applied / seconds, unit="/s")
            say(f"  rebuild: {applied:,} events in {seconds:.1f}s, {applied / seconds:,.0f}/s")
            stats = await collection_stats(store)
            if args.listing_shapes:
                figures.update(
                    await measure_listing_shapes(store.client, store, args.listing_shapes)
                )
            with tempfile.TemporaryDirectory(prefix="lfvolume-") as tmp:
                base = dataclasses.replace(
                    Settings(),
                    env="test",
                    grpc_listen="127.0.0.1:0",
                    postgres_url=_as_role(owner_url, "learnflow_app"),
                    postgres_migration_url=owner_url,
                    mongo_url=mongo_url,
                    mongo_database=name,
                    signing_keys_dir=Path(tmp) / "keys",
                    state_dir=Path(tmp),
                    bcrypt_rounds=4,
                    rate_limit_read="100000000/minute",
                    rate_limit_write="100000000/minute",
                    rate_limit_auth="100000000/minute",
                    rate_limit_login_per_account="100000000/minute",
                    rate_limit_infra="100000000/minute",
                    denials_audited_per_minute=100000,
                )
                # One server per query-cache size, one after the other on the same data (the
                # reads change nothing); the lag phase, which does, runs on the last one.
                variants = args.query_cache_entries
                for i, entries in enumerate(variants):
                    settings = dataclasses.replace(base, query_cache_entries=entries)
                    say(f"  query cache {entries} entries; load average {load_average()}")
                    backend: Backend = await build(settings)
                    logging.getLogger("learnflow").setLevel(logging.WARNING)
                    try:
                        target = f"127.0.0.1:{backend.port}"
                        async with grpc.aio.insecure_channel(target) as channel:
                            scn = scenario(world, args.probes, args.seed)
                            await login(channel, scn.probes)
                            reads = await measure_reads(
                                channel, scn, args.calls, args.concurrency, limit / 4
                            )
                            suffix = f" [query cache {entries}]" if len(variants) > 1 else ""
                            figures.update({name + suffix: f for name, f in reads.items()})
                            figures["query cache hits / misses / shared" + suffix] = cache_use(
                                backend
                            )
                            if i == len(variants) - 1:
                                figures.update(
                                    await measure_lag(
                                        channel,
                                        scn,
                                        args.rate,
                                        args.lag_seconds,
                                        30.0,
                                        list_meanwhile=args.list_during_lag,
                                    )
                                )
                                if args.list_during_lag:
                                    figures["query cache use, reads + commands"] = cache_use(
                                        backend
                                    )
                    finally:
                        await backend.close(grace_s=1)
                say(f"  load average {load_average()}")
        finally:
            await store.close()
            await drop_read_store(mongo_url, name)
    say(f"  scale {scale:g} done in {time.perf_counter() - started:.0f}s")
    return figures, stats


def cache_use(backend: Backend) -> Figure:
    cache = backend.query_cache
    if cache is None:
        return Figure(note="off")
    return Figure(note=f"{cache.hits:,} / {cache.misses:,} / {cache.shared:,}")


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs"


def variants_table(scale: float, figures: dict[str, Figure], variants: list[int]) -> str:
    """The reads of one scale side by side per query-cache size, and the first size's
    latency over the last's (`--query-cache-entries 0,500`: off / on, the speed-up)."""
    tags = [f" [query cache {v}]" for v in variants]
    names = [n[: -len(tags[0])] for n in figures if n.endswith(tags[0])]
    head = " | ".join(f"{v} entries" for v in variants)
    lines = [
        f"| {scale:g}x, p50 / p99 | {head} | p50 {variants[0]} / {variants[-1]} "
        f"| p99 {variants[0]} / {variants[-1]} |",
        "|---|" + "---:|" * (len(variants) + 2),
    ]
    for name in names:
        cells = [figures.get(name + t, Figure(note="—")) for t in tags]
        first, last = cells[0], cells[-1]
        ratios = ["", ""]
        if first.p50_ms and last.p50_ms and first.p99_ms and last.p99_ms:
            ratios = [f"{first.p50_ms / last.p50_ms:.1f}", f"{first.p99_ms / last.p99_ms:.1f}"]
        lines.append(
            f"| {name} | " + " | ".join(c.text() for c in cells) + f" | {' | '.join(ratios)} |"
        )
    return "\n".join(lines)


def table(scales: list[float], results: dict[float, dict[str, Figure]]) -> str:
    names: list[str] = []
    for scale in scales:
        for name in results.get(scale, {}):
            if name not in names:
                names.append(name)
    head = " | ".join(f"{s:g}x" for s in scales)
    lines = [
        f"| measure (p50 / p99) | {head} | ratio {scales[-1]:g}x / {scales[0]:g}x |",
        "|---|" + "---:|" * (len(scales) + 1),
    ]
    for name in names:
        cells = [results.get(s, {}).get(name, Figure(note="—")) for s in scales]
        first, last = cells[0].key(), cells[-1].key()
        ratio = f"{last / first:.1f}" if first and last and len(scales) > 1 else ""
        lines.append(f"| {name} | " + " | ".join(c.text() for c in cells) + f" | {ratio} |")
    return "\n".join(lines)


def stats_table(stats: dict[float, dict[str, tuple[int, float]]]) -> str:
    scales = sorted(stats)
    names = sorted({n for s in scales for n in stats[s]})
    head = " | ".join(f"{s:g}x: docs, mean size" for s in scales)
    lines = [f"| collection | {head} |", "|---|" + "---:|" * len(scales)]
    for name in names:
        cells = []
        for s in scales:
            count, size = stats[s].get(name, (0, 0.0))
            cells.append(f"{count:,}, {size:,.0f} B")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join((__doc__ or "").splitlines()[2:]),
    )
    parser.add_argument("--scales", default="1,10", help="comma-separated (1 = the base volume)")
    parser.add_argument("--max-scale", type=float, default=10, help="refuse larger scales")
    parser.add_argument(
        "--mongo-url", action="append", help=f"read store(s) to measure (default {DEFAULT_MONGO})"
    )
    parser.add_argument("--postgres-url", default=DEFAULT_PG, help="as the schema owner")
    parser.add_argument("--calls", type=int, default=60, help="calls per read measure")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=float, default=10.0, help="commands/s in the lag phase")
    parser.add_argument("--lag-seconds", type=float, default=20.0)
    parser.add_argument("--probes", type=int, default=24, help="students who log in")
    parser.add_argument("--step-timeout", type=float, default=900.0, help="seconds per step")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--query-cache-entries",
        default=str(Settings().query_cache_entries),
        help="comma-separated LEARNFLOW_QUERY_CACHE_ENTRIES to measure the reads with, one "
        "server each, on the same data (e.g. 0,500: the query cache off, then on)",
    )
    parser.add_argument(
        "--list-during-lag",
        action="store_true",
        help="one caller reads the catalog's first page in a loop during the lag phase",
    )
    parser.add_argument(
        "--listing-shapes",
        type=int,
        default=0,
        metavar="N",
        help="also time ListCourses' store calls N times each, on the courses collection and "
        "on a slim published-only copy (what a listing collection would save)",
    )
    args = parser.parse_args()
    args.query_cache_entries = [int(v) for v in args.query_cache_entries.split(",")]
    scales = sorted(float(s) for s in args.scales.split(","))
    if scales[-1] > args.max_scale:
        parser.error(f"scale {scales[-1]:g} is above --max-scale {args.max_scale:g}")
    logging.basicConfig(level=logging.WARNING)
    say(f"load average {load_average()}")
    output: dict[str, Any] = {}
    for mongo_url in args.mongo_url or [DEFAULT_MONGO]:
        results: dict[float, dict[str, Figure]] = {}
        stats: dict[float, dict[str, tuple[int, float]]] = {}
        for scale in scales:
            results[scale], stats[scale] = await run_scale(args, mongo_url, scale)
        print(f"\n### {mongo_url}\n\n{table(scales, results)}\n\n{stats_table(stats)}\n")
        if len(args.query_cache_entries) > 1:
            for scale in scales:
                print(f"{variants_table(scale, results[scale], args.query_cache_entries)}\n")
        print(f"load average at the end: {load_average()}")
        output[mongo_url] = {
            f"{s:g}": {k: dataclasses.asdict(v) for k, v in results[s].items()} for s in scales
        }
    if args.json:
        args.json.write_text(json.dumps(output, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
