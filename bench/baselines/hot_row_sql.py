"""The hot-row baseline: LearnFlow's UpdateCourse transaction as plain SQL through psycopg.

    python bench/baselines/hot_row_sql.py --url postgresql://postgres@127.0.0.1:55432/<db> \\
        --course-id <uuid> --actor-id <uuid> --clients 20 --duration 8

`--clients` connections each run, back to back, one transaction per call with the statements
issue 13 names for UpdateCourse (what it sent before it folded the audit, the events and the
NOTIFY into one statement and the reload into its UPDATE; `learnflow.commands.courses`,
`learnflow.storage.unit_of_work`):

1. `SELECT courses.*, users.display_name ... FOR UPDATE OF courses`  (the row lock)
2. `UPDATE courses SET title = ..., updated_at = now() ... RETURNING ...`
3. `INSERT INTO audit_log ... RETURNING id, occurred_at`
4. `INSERT INTO events ...` (the audit.recorded and course.updated events, JSONB payloads)
5. `NOTIFY learnflow_events`

all on the same course row, as the schema owner, against the bench's database. Prints one
JSON line: requests, duration, p50/p90/p99 latency (ms) and failures. Written for
bench/read_path.py, never part of the package.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

LOCK = (
    "SELECT courses.*, users.display_name AS owner_name FROM courses"
    " JOIN users ON users.id = courses.owner_id WHERE courses.id = %s FOR UPDATE OF courses"
)
UPDATE = (
    "UPDATE courses SET title = %s, updated_at = now() WHERE id = %s"
    " RETURNING id, owner_id, title, slug, summary, tags, level, state, capacity,"
    " enrollment_open_at, enrollment_close_at, lesson_count, active_enrollment_count,"
    " created_at, updated_at, published_at"
)
AUDIT = (
    "INSERT INTO audit_log (actor_id, action, resource, outcome, request_id, client_address,"
    " details) VALUES (%s, 'course.update', %s, 'success', %s, '127.0.0.1', %s)"
    " RETURNING id, occurred_at"
)
EVENTS = (
    "INSERT INTO events (event_type, aggregate_type, aggregate_id, schema_version, payload)"
    " VALUES ('audit.recorded', 'audit', %s, 1, %s), ('course.updated', 'course', %s, 1, %s)"
    " RETURNING txid::text, position"
)
NOTIFY = "NOTIFY learnflow_events"


def iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


async def one_call(
    conn: psycopg.AsyncConnection[Any], course_id: uuid.UUID, actor_id: uuid.UUID, n: int
) -> None:
    request_id = uuid.uuid4().hex
    async with conn.transaction():
        cur = await conn.execute(LOCK, (course_id,))
        locked = await cur.fetchone()
        if locked is None:
            raise SystemExit(f"hot_row_sql: course {course_id} not found")
        cur = await conn.execute(UPDATE, (f"Hot row {n}", course_id))
        row = await cur.fetchone()
        assert row is not None
        resource = f"courses/{course_id}"
        cur = await conn.execute(
            AUDIT, (actor_id, resource, request_id, Jsonb({"fields": ["title"]}))
        )
        audit = await cur.fetchone()
        assert audit is not None
        audit_payload = {
            "id": audit[0],
            "actor_id": str(actor_id),
            "action": "course.update",
            "resource": resource,
            "outcome": "success",
            "request_id": request_id,
            "client_address": "127.0.0.1",
            "occurred_at": audit[1].isoformat(),
        }
        course_payload = {
            "id": str(row[0]),
            "owner_id": str(row[1]),
            "owner_name": locked[-1],
            "title": row[2],
            "slug": row[3],
            "summary": row[4],
            "tags": list(row[5]),
            "level": row[6],
            "state": row[7],
            "capacity": row[8],
            "enrollment_open_at": iso(row[9]),
            "enrollment_close_at": iso(row[10]),
            "lesson_count": row[11],
            "active_enrollment_count": row[12],
            "created_at": iso(row[13]),
            "updated_at": iso(row[14]),
            "published_at": iso(row[15]),
        }
        await conn.execute(
            EVENTS, (str(audit[0]), Jsonb(audit_payload), str(course_id), Jsonb(course_payload))
        )
        await conn.execute(NOTIFY)


async def client(
    url: str,
    course_id: uuid.UUID,
    actor_id: uuid.UUID,
    start: asyncio.Event,
    until: list[float],
    latencies: list[float],
    failures: list[str],
) -> None:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        await start.wait()
        n = 0
        while time.perf_counter() < until[0]:
            began = time.perf_counter()
            try:
                await one_call(conn, course_id, actor_id, n)
            except psycopg.Error as exc:
                failures.append(type(exc).__name__)
                continue
            latencies.append(time.perf_counter() - began)
            n += 1


async def run(args: argparse.Namespace) -> dict[str, Any]:
    start = asyncio.Event()
    until = [0.0]
    latencies: list[float] = []
    failures: list[str] = []
    course_id, actor_id = uuid.UUID(args.course_id), uuid.UUID(args.actor_id)
    tasks = [
        asyncio.create_task(
            client(args.url, course_id, actor_id, start, until, latencies, failures)
        )
        for _ in range(args.clients)
    ]
    await asyncio.sleep(0.5)  # every connection open before the clock starts
    began = time.perf_counter()
    until[0] = began + args.duration
    start.set()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - began
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "requests": len(latencies),
        "duration_s": elapsed,
        "rps": len(latencies) / elapsed,
        "p50_ms": cuts[49] * 1e3,
        "p90_ms": cuts[89] * 1e3,
        "p99_ms": cuts[98] * 1e3,
        "failures": len(failures),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="libpq URL, as the schema owner")
    parser.add_argument("--course-id", required=True)
    parser.add_argument("--actor-id", required=True, help="the audit row's actor")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
