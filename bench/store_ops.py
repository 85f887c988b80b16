"""Benchmark: the read store's primitive operations as a collection grows (not a test).

    python bench/store_ops.py --url mongodb://127.0.0.1:57017/ --label sqlite
    python bench/store_ops.py --url mongodb://127.0.0.1:57018/ --label postgresql
    python bench/store_ops.py --pg-url postgresql://postgres@127.0.0.1:55432/ferretdb

With `--pg-url` (FerretDB's own PostgreSQL database, PostgreSQL backend only) every size is
measured twice in the same run: on the bare table FerretDB created (its btree indexes only),
then with the companion GIN indexes of `scripts/ferretdb_pg_indexes.sql` on the scratch table
(created by this script on its own table, dropped before the next size is seeded, so it
works whether or not the event trigger is installed).

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
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
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


COMPANIONS_SQL = """
SELECT c.relname FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_am a ON a.oid = c.relam
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND a.amname = 'gin'
"""


async def set_companions(pg_url: str, schema: str, on: bool) -> None:
    """Drops the scratch schema's GIN indexes, then (`on`) creates the companions as
    `scripts/ferretdb_pg_indexes.sql` would: one GIN jsonb_path_ops per indexed field."""
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        cur = await conn.execute(COMPANIONS_SQL, (schema,))
        for (name,) in await cur.fetchall():
            await conn.execute(f'DROP INDEX "{schema}"."{name}"')
        if not on:
            return
        cur = await conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename LIKE 'courses%%'",
            (schema,),
        )
        row = await cur.fetchone()
        assert row is not None, "the scratch collection's table was not found"
        for i, field in enumerate(("_id", "owner_id", "state", "sort_key")):
            await conn.execute(
                f'CREATE INDEX "bench_{i}_lfgin" ON "{schema}"."{row[0]}" '
                f"USING gin ((_jsonb -> '{field}') jsonb_path_ops)"
            )
            await conn.execute(f'ANALYZE "{schema}"."{row[0]}"')


async def measure(
    url: str, sizes: list[int], repeat: int, pg_url: str | None = None
) -> list[tuple[int, dict[str, float]]]:
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
            if pg_url:
                await set_companions(pg_url, db.name, on=False)  # seeded without them
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
            medians = {name: await median_ms(op, repeat) for name, op in ops.items()}
            if pg_url:
                await set_companions(pg_url, db.name, on=True)
                for name, op in ops.items():
                    medians[f"{name}, GIN companions"] = await median_ms(op, repeat)
            results.append((size, medians))
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
    parser.add_argument(
        "--pg-url", help="FerretDB's PostgreSQL database: also measure with GIN companions"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = asyncio.run(measure(args.url, sizes, args.repeat, args.pg_url))
    names = list(results[0][1])
    base = results[0][1]
    print(f"## {args.label}: median ms per operation (ratio to {sizes[0]} documents, same run)")
    print("| operation | " + " | ".join(f"{size:,} docs" for size, _ in results) + " |")
    print("|---|" + "---|" * len(results))
    for name in names:
        cells = [f"{r[name]:.1f} ({r[name] / base[name]:.0f}x)" for _, r in results]
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.pg_url:
        size, last = results[-1]
        print(f"\nAt {size:,} documents, bare table / with GIN companions (same run):")
        for name in names:
            if f"{name}, GIN companions" in last:
                bare, gin = last[name], last[f"{name}, GIN companions"]
                print(f"- {name}: {bare:.1f} ms / {gin:.1f} ms = {bare / gin:.0f}x")
    print(f"\nload average after the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
