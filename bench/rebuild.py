"""Benchmark: `projections rebuild` over 100,000 events (not a test).

Seeds a dedicated PostgreSQL database with realistic, state-carrying events (users, courses,
lessons, enrollments, completions, quiz attempts, comments and their audit records) by one
bulk COPY, then times a full rebuild into fresh MongoDB generations a few times and prints
events, seconds and events/s (median). Baseline, measured in the same run: reading every event
from PostgreSQL in the rebuild's pages and decoding it, without projecting or writing anything
(the floor any rebuild pays); the ratio rebuild/read says what projecting into MongoDB adds.

    python bench/rebuild.py [--events 100000] [--runs 3]

Uses LEARNFLOW_POSTGRES_MIGRATION_URL's server as the schema owner (database
`learnflow_bench_rebuild`, recreated) and LEARNFLOW_MONGO_URL (database `lfbench_rebuild_*`,
dropped afterwards). Measured (FerretDB/SQLite, 2 shared cores): 100,000 events in 12.05 s,
~8,300 events/s, median of 3; read-only baseline 2.04 s, ratio 5.9.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import statistics
import time
import uuid
from typing import Any

import psycopg
from pymongo import AsyncMongoClient

from learnflow.migrations import upgrade_to_head
from learnflow.positions import ZERO
from learnflow.projections.projector import REBUILD_FETCH, Projector, fetch_events, libpq_url
from learnflow.projections.registry import all_projections
from learnflow.projections.store import ReadStore
from learnflow.settings import Settings

BENCH_DB = "learnflow_bench_rebuild"
Row = tuple[str, str, str, dict[str, Any]]


class Seeder:
    def __init__(self, target: int, seed: int = 7) -> None:
        self.target = target
        self.rng = random.Random(seed)
        self.rows: list[Row] = []
        self.clock = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        self.audit_id = 0

    def now(self) -> str:
        self.clock += dt.timedelta(milliseconds=self.rng.randint(1, 500))
        return self.clock.isoformat()

    def emit(self, event_type: str, aggregate: str, aggregate_id: str, payload: Any) -> None:
        self.rows.append((event_type, aggregate, aggregate_id, payload))

    def audit(self, actor: str, action: str, resource: str) -> None:
        self.audit_id += 1
        self.emit(
            "audit.recorded",
            "audit",
            str(self.audit_id),
            {
                "id": self.audit_id,
                "actor_id": actor,
                "action": action,
                "resource": resource,
                "outcome": "success",
                "request_id": uuid.uuid4().hex,
                "client_address": "127.0.0.1",
                "occurred_at": self.now(),
            },
        )

    def user(self, role: str) -> dict[str, Any]:
        user_id = str(uuid.UUID(int=self.rng.getrandbits(128)))
        payload = {
            "id": user_id,
            "email": f"{user_id[:12]}@example.com",
            "display_name": f"User {user_id[:6]}",
            "role": role,
            "disabled": False,
            "created_at": self.now(),
        }
        self.emit("user.registered", "user", user_id, payload)
        self.audit(user_id, "user.register", f"users/{user_id}")
        return payload

    def course_payload(self, course: dict[str, Any]) -> dict[str, Any]:
        return {**course, "updated_at": self.now()}

    def seed(self) -> list[Row]:
        rng = self.rng
        instructors = [self.user("instructor") for _ in range(20)]
        students = [self.user("student") for _ in range(3000)]
        courses: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
        for i in range(150):
            owner = rng.choice(instructors)
            course_id = str(uuid.UUID(int=rng.getrandbits(128)))
            created = self.now()
            course: dict[str, Any] = {
                "id": course_id,
                "owner_id": owner["id"],
                "owner_name": owner["display_name"],
                "title": f"Course {i} on {rng.choice(['python', 'go', 'sql', 'css'])}",
                "slug": f"course-{i}",
                "summary": "A course. " * 20,
                "tags": rng.sample(["python", "web", "data", "ml", "ops", "go"], 2),
                "level": rng.choice(["beginner", "intermediate", "advanced"]),
                "state": "draft",
                "capacity": 0,
                "enrollment_open_at": None,
                "enrollment_close_at": None,
                "lesson_count": 0,
                "active_enrollment_count": 0,
                "created_at": created,
                "updated_at": created,
                "published_at": None,
            }
            self.emit("course.created", "course", course_id, course)
            self.audit(owner["id"], "course.create", f"courses/{course_id}")
            outline: list[dict[str, Any]] = []
            for position in range(1, 9):
                lesson_id = str(uuid.UUID(int=rng.getrandbits(128)))
                kind = "quiz" if position % 4 == 0 else "article"
                content: dict[str, Any] = (
                    {
                        "pass_threshold_percent": 70,
                        "questions": [
                            {
                                "id": f"q{n}",
                                "prompt": "Which?",
                                "choices": ["a", "b", "c"],
                                "correct_choice_indexes": [n % 3],
                            }
                            for n in range(3)
                        ],
                    }
                    if kind == "quiz"
                    else {"markdown": "# Lesson\n\n" + "Some text. " * 80}
                )
                outline.append(
                    {
                        "id": lesson_id,
                        "title": f"L{position}",
                        "position": position,
                        "content_type": kind,
                    }
                )
                at = self.now()
                self.emit(
                    "lesson.created",
                    "lesson",
                    lesson_id,
                    {
                        "id": lesson_id,
                        "course_id": course_id,
                        "course_title": course["title"],
                        "title": f"L{position}",
                        "position": position,
                        "content_type": kind,
                        "content": content,
                        "created_at": at,
                        "updated_at": at,
                        "outline": [dict(e) for e in outline],
                    },
                )
                course["lesson_count"] = position
                self.emit("course.counts_changed", "course", course_id, self.course_payload(course))
                self.audit(owner["id"], "lesson.create", f"courses/{course_id}/lessons/{lesson_id}")
            course["state"] = "published"
            course["published_at"] = self.now()
            self.emit("course.published", "course", course_id, self.course_payload(course))
            self.audit(owner["id"], "course.publish", f"courses/{course_id}")
            courses.append((course, outline))
        progress: dict[tuple[str, str], list[str]] = {}
        while len(self.rows) < self.target:
            student = rng.choice(students)
            course, outline = rng.choice(courses)
            key = (student["id"], course["id"])
            at = self.now()
            if key not in progress:
                progress[key] = []
                course["active_enrollment_count"] += 1
                self.emit(
                    "enrollment.activated",
                    "enrollment",
                    f"{course['id']}:{student['id']}",
                    {
                        "course_id": course["id"],
                        "user_id": student["id"],
                        "state": "active",
                        "enrolled_at": at,
                        "updated_at": at,
                        "completed_at": None,
                        "active_enrollment_count": course["active_enrollment_count"],
                    },
                )
                self.emit(
                    "course.counts_changed", "course", course["id"], self.course_payload(course)
                )
                self.audit(student["id"], "enrollment.enroll", f"courses/{course['id']}")
                continue
            lesson = rng.choice(outline)
            roll = rng.random()
            if roll < 0.6 and lesson["id"] not in progress[key]:
                progress[key].append(lesson["id"])
                done = [e["id"] for e in outline if e["id"] in progress[key]]
                self.emit(
                    "progress.lesson_completed",
                    "enrollment",
                    f"{course['id']}:{student['id']}",
                    {
                        "user_id": student["id"],
                        "course_id": course["id"],
                        "lesson_id": lesson["id"],
                        "completed_at": at,
                        "completed_lesson_ids": done,
                        "lesson_count": len(outline),
                    },
                )
                self.audit(student["id"], "lesson.complete", f"courses/{course['id']}")
            elif roll < 0.75 and lesson["content_type"] == "quiz":
                score = rng.choice([0, 33, 66, 100])
                self.emit(
                    "progress.quiz_attempted",
                    "enrollment",
                    f"{course['id']}:{student['id']}",
                    {
                        "user_id": student["id"],
                        "course_id": course["id"],
                        "lesson_id": lesson["id"],
                        "attempt_id": str(uuid.uuid4()),
                        "score": score,
                        "passed": score >= 70,
                        "best_score": score,
                        "attempted_at": at,
                    },
                )
                self.audit(student["id"], "quiz.attempt", f"courses/{course['id']}")
            else:
                comment_id = str(uuid.uuid4())
                self.emit(
                    "comment.created",
                    "comment",
                    comment_id,
                    {
                        "id": comment_id,
                        "course_id": course["id"],
                        "lesson_id": lesson["id"],
                        "parent_id": "",
                        "author_id": student["id"],
                        "author_name": student["display_name"],
                        "body": "A thoughtful comment. " * 5,
                        "deleted": False,
                        "created_at": at,
                        "updated_at": at,
                    },
                )
                self.audit(student["id"], "comment.create", f"comments/{comment_id}")
        return self.rows[: self.target]


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    base = Settings.from_env()
    # The schema owner's role creates the database, seeds it and replays it.
    owner_url = base.postgres_migration_url
    admin_url = _with_database(libpq_url(owner_url), "postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    postgres_url = _with_database(owner_url, BENCH_DB)
    upgrade_to_head(postgres_url)

    started = time.perf_counter()
    rows = Seeder(args.events).seed()
    async with await psycopg.AsyncConnection.connect(libpq_url(postgres_url)) as conn:
        async with (
            conn.cursor() as cur,
            cur.copy(
                "COPY events (event_type, aggregate_type, aggregate_id, payload) FROM STDIN"
            ) as copy,
        ):
            for event_type, aggregate, aggregate_id, payload in rows:
                await copy.write_row((event_type, aggregate, aggregate_id, json.dumps(payload)))
        await conn.commit()
    print(f"seeded {len(rows)} events in {time.perf_counter() - started:.1f}s")

    name = f"lfbench_rebuild_{uuid.uuid4().hex[:6]}"
    store = ReadStore.connect(base.mongo_url, name)
    timings: list[float] = []
    reads: list[float] = []
    try:
        for run in range(args.runs):
            reads.append(await read_all(postgres_url))
            projector = Projector(postgres_url, store, all_projections())
            generation, applied, seconds = await projector.rebuild()
            timings.append(seconds)
            print(
                f"run {run + 1}: generation {generation}, {applied} events, {seconds:.2f}s,"
                f" {applied / seconds:,.0f} events/s"
            )
    finally:
        client: AsyncMongoClient[dict[str, Any]] = store.client
        for generation in range(0, args.runs + 2):
            await client.drop_database(f"{name}_g{generation}")
        await client.drop_database(f"{name}_meta")
        await store.close()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
    median = statistics.median(timings)
    read_median = statistics.median(reads)
    print(
        f"events={len(rows)} seconds={median:.2f} events_per_s={len(rows) / median:,.0f}"
        f" (median of {len(timings)}); baseline read-only pass {read_median:.2f}s,"
        f" rebuild/read ratio {median / read_median:.1f}"
    )


async def read_all(postgres_url: str) -> float:
    """The baseline: page through every event as a rebuild does, without projecting."""
    started = time.perf_counter()
    async with await psycopg.AsyncConnection.connect(
        libpq_url(postgres_url), autocommit=True
    ) as conn:
        after, count = ZERO, 0
        while events := await fetch_events(conn, after, REBUILD_FETCH):
            after, count = events[-1].key, count + len(events)
    return time.perf_counter() - started


if __name__ == "__main__":
    asyncio.run(main())
