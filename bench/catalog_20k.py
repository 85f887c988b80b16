"""Benchmark: read-your-writes with 20,000 course documents in the live catalog (not a test).

Issue 14's end-to-end case: 20,000 extra (archived) course documents in the read model, then
learners enroll at a steady `--rate` commands/s; each enrollment is read back with its
consistency token (ListMyEnrollments) and timed from the command's response to the answer.
The baseline is the same run before the 20,000 documents are added.

    python bench/catalog_20k.py --mongo-url mongodb://127.0.0.1:57017/

A fresh PostgreSQL database and read store are created and dropped; a real server
(`learnflow.server.build`, its projector running) serves the calls.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import psycopg
from pymongo import AsyncMongoClient, InsertOne

from learnflow.migrations import upgrade_to_head
from learnflow.projections.projector import libpq_url
from learnflow.server import build
from learnflow.settings import Settings
from learnflow.v1 import (
    courses_pb2,
    courses_pb2_grpc,
    identity_pb2,
    identity_pb2_grpc,
    learning_pb2,
    learning_pb2_grpc,
)

PASSWORD = "bench-password-1"


@contextlib.asynccontextmanager
async def fresh_database(owner_url: str) -> AsyncIterator[str]:
    name = f"learnflow_c20k_{uuid.uuid4().hex[:8]}"
    admin = owner_url.rpartition("/")[0] + "/postgres"
    async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
        await conn.execute(f'CREATE DATABASE "{name}"')
    url = "postgresql+psycopg://" + owner_url.rpartition("/")[0].split("://", 1)[1] + "/" + name
    try:
        await asyncio.to_thread(upgrade_to_head, url)
        yield url
    finally:
        async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def archived_course(i: int) -> dict[str, Any]:
    course_id = str(uuid.UUID(int=10**12 + i))
    return {
        "_id": course_id,
        "owner_id": str(uuid.UUID(int=i % 97)),
        "owner_name": "Someone",
        "title": f"Archived course {i}",
        "title_lower": f"archived course {i}",
        "slug": f"archived-course-{i}",
        "summary": "An old course. " * 40,
        "tags": ["history"],
        "level": "beginner",
        "state": "archived",
        "capacity": 0,
        "enrollment_open_at": None,
        "enrollment_close_at": None,
        "lesson_count": 10,
        "active_enrollment_count": 0,
        "created_at": "2025-01-01T00:00:00+00:00",
        "updated_at": "2025-01-01T00:00:00+00:00",
        "published_at": "2025-01-01T00:00:00+00:00",
        "sort_key": f"2025-01-01T00:00:00.000000Z|{course_id}",
        "outline": [],
        "v": 1,
    }


async def enroll_and_read(
    channel: grpc.aio.Channel, course_id: str, learners: list[str], rate: float
) -> list[float]:
    """Enrolls each learner (access tokens in `learners`) at `rate`/s; returns the seconds
    from each response to its read with the consistency token answering."""
    learning = learning_pb2_grpc.LearningServiceStub(channel)
    progress = learning_pb2_grpc.ProgressServiceStub(channel)

    async def one(token: str) -> float:
        auth = (("authorization", f"Bearer {token}"),)
        reply = await learning.EnrollInCourse(
            learning_pb2.EnrollInCourseRequest(course_id=course_id), metadata=auth, timeout=30
        )
        answered = time.perf_counter()
        while True:
            try:
                await progress.ListMyEnrollments(
                    learning_pb2.ListMyEnrollmentsRequest(),
                    metadata=(*auth, ("x-consistency-token", reply.consistency_token)),
                    timeout=30,
                )
                return time.perf_counter() - answered
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    raise

    tasks = []
    for token in learners:
        tasks.append(asyncio.create_task(one(token)))
        await asyncio.sleep(1 / rate)
    return list(await asyncio.gather(*tasks))


async def learners(channel: grpc.aio.Channel, n: int) -> list[str]:
    identity = identity_pb2_grpc.IdentityServiceStub(channel)
    tokens = []
    for _ in range(n):
        email = f"learner-{uuid.uuid4().hex[:10]}@example.com"
        await identity.RegisterUser(
            identity_pb2.RegisterUserRequest(email=email, password=PASSWORD, display_name="L")
        )
        session = await identity.CreateSession(
            identity_pb2.CreateSessionRequest(email=email, password=PASSWORD)
        )
        tokens.append(session.access_token)
    return tokens


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    over = sum(1 for s in samples if s > 2.0)
    return (
        f"p50 {statistics.median(samples) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
        f"max {max(samples) * 1000:.0f} ms, over 2 s: {over} of {len(samples)}"
    )


async def run(args: argparse.Namespace) -> None:
    async with fresh_database(args.postgres_url) as owner_url:
        scheme, _, rest = owner_url.partition("://")
        app_url = f"{scheme}://learnflow_app@{rest.rpartition('@')[2]}"
        keys = Path(tempfile.mkdtemp())
        settings = dataclasses.replace(
            Settings(),
            env="test",
            grpc_listen="127.0.0.1:0",
            postgres_url=app_url,
            postgres_migration_url=owner_url,
            mongo_url=args.mongo_url,
            mongo_database=f"lfc20k_{uuid.uuid4().hex[:6]}",
            signing_keys_dir=keys,
            bcrypt_rounds=4,
            projector_poll_s=0.2,
            rate_limit_read="1000000/minute",
            rate_limit_write="1000000/minute",
            rate_limit_auth="1000000/minute",
        )
        backend = await build(settings)
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(args.mongo_url)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{backend.port}") as channel:
                identity = identity_pb2_grpc.IdentityServiceStub(channel)
                # An instructor, promoted the way an operator bootstraps one, then logged in.
                email = f"teacher-{uuid.uuid4().hex[:8]}@example.com"
                await identity.RegisterUser(
                    identity_pb2.RegisterUserRequest(
                        email=email, password=PASSWORD, display_name="Teacher"
                    )
                )
                async with await psycopg.AsyncConnection.connect(libpq_url(owner_url)) as conn:
                    await conn.execute(
                        "UPDATE users SET role = 'instructor' WHERE email = %s", (email,)
                    )
                session = await identity.CreateSession(
                    identity_pb2.CreateSessionRequest(email=email, password=PASSWORD)
                )
                auth = (("authorization", f"Bearer {session.access_token}"),)
                catalog = courses_pb2_grpc.CourseServiceStub(channel)
                course = (
                    await catalog.CreateCourse(
                        courses_pb2.CreateCourseRequest(
                            course=courses_pb2.Course(title="The live course")
                        ),
                        metadata=auth,
                    )
                ).course
                await catalog.CreateLesson(
                    courses_pb2.CreateLessonRequest(
                        course_id=course.id,
                        lesson=courses_pb2.Lesson(
                            title="One", article=courses_pb2.Article(markdown="# One")
                        ),
                    ),
                    metadata=auth,
                )
                await catalog.PublishCourse(
                    courses_pb2.PublishCourseRequest(course_id=course.id), metadata=auth
                )
                before_tokens = await learners(channel, args.enrollments)
                after_tokens = await learners(channel, args.enrollments)
                print(f"baseline (a few course documents), {args.rate}/s:")
                base = await enroll_and_read(channel, course.id, before_tokens, args.rate)
                print("  " + summary(base))
                db = await backend.store.active(max_age_s=0)
                docs = [InsertOne(archived_course(i)) for i in range(args.courses)]
                started = time.perf_counter()
                for start in range(0, len(docs), 1000):
                    await db["courses"].bulk_write(docs[start : start + 1000], ordered=False)
                print(
                    f"inserted {args.courses:,} archived course documents "
                    f"in {time.perf_counter() - started:.1f} s"
                )
                print(f"with {args.courses:,} more course documents, {args.rate}/s:")
                loaded = await enroll_and_read(channel, course.id, after_tokens, args.rate)
                print("  " + summary(loaded))
                ratio = statistics.median(loaded) / statistics.median(base)
                print(f"  median read-back vs the same-run baseline: {ratio:.1f}x")
        finally:
            await backend.close(grace_s=1)
            for generation in (1, 2):
                await client.drop_database(f"{settings.mongo_database}_g{generation}")
            await client.drop_database(f"{settings.mongo_database}_meta")
            await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mongo-url", default="mongodb://127.0.0.1:57017/")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:55432/postgres")
    parser.add_argument("--courses", type=int, default=20_000)
    parser.add_argument("--enrollments", type=int, default=100)
    parser.add_argument("--rate", type=float, default=10.0)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
