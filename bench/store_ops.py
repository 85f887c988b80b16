"""Benchmark: the read store's primitive operations as a collection grows (not a test).

    python bench/store_ops.py --url mongodb://127.0.0.1:57017/ --label sqlite
    python bench/store_ops.py --url mongodb://127.0.0.1:57018/ --label postgresql

Seeds course-like documents (about 1 KiB each) into a scratch database, then times, at each
size, the operations the projector and the queries send: `find_one` by `_id`, the projector's
fenced replace by `_id` with an *equality* guard (`{_id, e: <epoch it last wrote>}`, the
current design) and with the former *range* guard (`{_id, e: {$not: {$gt: n}}}`), an indexed
equality `find`, and a sorted page (`find({state}).sort(sort_key).limit(20)`). The baseline of
each row is the same operation on the smallest size, measured in the same run: the ratio says
how the cost grows with the collection. Medians of `--repeat` calls.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, InsertOne

Doc = dict[str, Any]


def course(i: int) -> Doc:
    return {
        "_id": str(uuid.UUID(int=i)),
        "owner_id": str(uuid.UUID(int=i % 50)),
        "title": f"Course {i}",
        "summary": "x" * 600,
        "tags": ["python", "data"],
        "state": "published" if i % 10 == 0 else "archived",
        "sort_key": f"{i:012d}",
        "lesson_count": 10,
        "e": 1,
        "v": 1,
    }


async def median_ms(op: Callable[[], Awaitable[Any]], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await op()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def measure(url: str, sizes: list[int], repeat: int) -> list[tuple[int, dict[str, float]]]:
    client: AsyncMongoClient[Doc] = AsyncMongoClient(url)
    db = client[f"bench_store_{uuid.uuid4().hex[:6]}"]
    coll = db["courses"]
    await coll.create_index([("owner_id", ASCENDING)])
    await coll.create_index([("state", ASCENDING), ("sort_key", DESCENDING)])
    results = []
    have = 0
    try:
        for size in sizes:
            batch = [InsertOne(course(i)) for i in range(have, size)]
            for start in range(0, len(batch), 1000):
                await coll.bulk_write(batch[start : start + 1000], ordered=False)
            have = size
            middle = course(size // 2)
            target = {"_id": middle["_id"]}

            async def find_id(target: Doc = target) -> Any:
                return await coll.find_one(target)

            async def replace_eq(middle: Doc = middle) -> Any:
                return await coll.replace_one({"_id": middle["_id"], "e": 1}, middle)

            async def replace_range(middle: Doc = middle) -> Any:
                return await coll.replace_one(
                    {"_id": middle["_id"], "e": {"$not": {"$gt": 1}}}, middle
                )

            async def by_owner() -> Any:
                return await coll.find({"owner_id": str(uuid.UUID(int=7))}).to_list()

            async def page() -> Any:
                query = coll.find({"state": "published"}).sort("sort_key", DESCENDING)
                return await query.limit(20).to_list()

            ops = {
                "find_one _id": find_id,
                "replace _id+e (equality)": replace_eq,
                "replace _id+e (range)": replace_range,
                "find owner_id": by_owner,
                "page state+sort": page,
            }
            results.append((size, {name: await median_ms(op, repeat) for name, op in ops.items()}))
    finally:
        await client.drop_database(db.name)
        await client.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="mongodb://127.0.0.1:57017/")
    parser.add_argument("--label", default="store")
    parser.add_argument("--sizes", default="100,2000,20000")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = asyncio.run(measure(args.url, sizes, args.repeat))
    names = list(results[0][1])
    base = results[0][1]
    print(f"## {args.label}: median ms per operation (ratio to {sizes[0]} documents, same run)")
    print("| operation | " + " | ".join(f"{size:,} docs" for size, _ in results) + " |")
    print("|---|" + "---|" * len(results))
    for name in names:
        cells = [f"{r[name]:.1f} ({r[name] / base[name]:.0f}x)" for _, r in results]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
