"""Memory of a server process's read caches when full (issue 13, goal 6).

    .venv/bin/python bench/cache_memory.py [--url mongodb://127.0.0.1:57017/] [--docs 20000]

Fills the document cache (`learnflow.projections.read_cache.ReadCache`) with `--docs` course
documents shaped as the catalog projection writes them (a 600-character summary, tags, ten
outline entries: ~2.4 KB of BSON each, the mean measured at the base volume), read back from a
real MongoDB-wire store, and builds each one's GetCourse reply as the query handler keeps it
(`ReadModels.reply`). Reports the process's RSS before, after the documents, and after the
replies, per 1,000 documents and at the settings' bounds (`LEARNFLOW_READ_CACHE_DOCS`; the
replies are bounded by the same number). The scratch database is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import uuid
from typing import Any

from pymongo import AsyncMongoClient, InsertOne

from learnflow.projections.read_cache import ReadCache
from learnflow.projections.store import ReadStore
from learnflow.queries.catalog import course_message
from learnflow.queries.read_models import BuiltFrom
from learnflow.settings import Settings
from learnflow.v1 import courses_pb2


def course(i: int) -> dict[str, Any]:
    course_id = str(uuid.UUID(int=i))
    return {
        "_id": course_id,
        "owner_id": str(uuid.UUID(int=10**6 + i % 100)),
        "owner_name": f"Instructor {i % 100}",
        "title": f"Course number {i}: a practical introduction",
        "slug": f"course-number-{i}-a-practical-introduction-{i:06x}",
        "summary": "A summary of what the course teaches, written by its instructor. " * 9,
        "tags": ["python", "data", "beginners"],
        "level": "beginner",
        "state": "published",
        "capacity": 500,
        "enrollment_open_at": None,
        "enrollment_close_at": None,
        "lesson_count": 10,
        "active_enrollment_count": i % 300,
        "created_at": "2026-10-01T09:30:00.123456+00:00",
        "updated_at": "2026-11-01T09:30:00.123456+00:00",
        "published_at": "2026-10-02T09:30:00.123456+00:00",
        "sort_key": f"{i:012d}",
        "search_text": f"course number {i} a practical introduction python data beginners",
        "outline": [
            {
                "id": str(uuid.UUID(int=10**9 + i * 10 + n)),
                "title": f"Lesson {n + 1}: a topic worth a lesson",
                "position": n + 1,
                "content_type": "article" if n % 3 else "quiz",
            }
            for n in range(10)
        ],
        "e": 1,
        "v": 3,
    }


def rss_mib() -> float:
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def reply(doc: dict[str, Any]) -> courses_pb2.GetCourseResponse:
    lessons = [
        courses_pb2.LessonSummary(
            id=e["id"], title=e["title"], position=e["position"], content_type=e["content_type"]
        )
        for e in doc["outline"]
    ]
    return courses_pb2.GetCourseResponse(course=course_message(doc), lessons=lessons)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="mongodb://127.0.0.1:57017/")
    parser.add_argument("--docs", type=int, default=20_000)
    args = parser.parse_args()
    name = f"lfbench_cachemem_{uuid.uuid4().hex[:8]}"
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(args.url, tz_aware=True)
    store = ReadStore(client, name)
    db = store.database(1)
    try:
        for start in range(0, args.docs, 1000):
            batch = [InsertOne(course(i)) for i in range(start, min(start + 1000, args.docs))]
            await db["courses"].bulk_write(batch, ordered=False)
        cache = ReadCache(store, max_docs=args.docs, ttl_s=3600)
        built = BuiltFrom(args.docs)
        ids = [str(uuid.UUID(int=i)) for i in range(args.docs)]
        gc.collect()
        before = rss_mib()
        docs = [await cache.get(db, "courses", doc_id) for doc_id in ids]
        del docs
        gc.collect()
        with_docs = rss_mib()
        for doc_id in ids:
            doc = await cache.get(db, "courses", doc_id)
            assert doc is not None
            built.get(doc, "GetCourse", reply)
        gc.collect()
        with_replies = rss_mib()
        assert len(cache) == args.docs and len(built) == args.docs
    finally:
        await client.drop_database(name)
        await client.close()
    per_k_docs = (with_docs - before) / args.docs * 1000
    per_k_replies = (with_replies - with_docs) / args.docs * 1000
    bound = Settings().read_cache_docs
    print(f"{args.docs:,} course documents (~2.4 KB of BSON each), load {os.getloadavg()[0]:.2f}")
    print()
    print("| | RSS MiB | MiB per 1,000 documents |")
    print("|---|---:|---:|")
    print(f"| process before | {before:.0f} | |")
    print(f"| + documents in the read cache | {with_docs:.0f} | {per_k_docs:.1f} |")
    print(f"| + GetCourse replies kept with them | {with_replies:.0f} | {per_k_replies:.1f} |")
    print()
    print(
        f"At LEARNFLOW_READ_CACHE_DOCS={bound:,} (the default): about "
        f"{(per_k_docs + per_k_replies) * bound / 1000:.0f} MiB for documents and replies."
    )


if __name__ == "__main__":
    asyncio.run(main())
