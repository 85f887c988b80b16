"""The local backing services answer: PostgreSQL and the MongoDB-wire server."""

import os

import psycopg
from pymongo import AsyncMongoClient

PG_PORT = os.environ.get("LEARNFLOW_PG_PORT", "55432")
MONGO_PORT = os.environ.get("LEARNFLOW_MONGO_PORT", "57017")
PG_URL = os.environ.get(
    "LEARNFLOW_POSTGRES_URL", f"postgresql://postgres@127.0.0.1:{PG_PORT}/learnflow_test"
)
MONGO_URL = os.environ.get("LEARNFLOW_MONGO_URL", f"mongodb://127.0.0.1:{MONGO_PORT}/")


async def test_postgres_answers_a_transaction() -> None:
    async with await psycopg.AsyncConnection.connect(PG_URL) as conn:
        cur = await conn.execute("select pg_snapshot_xmin(pg_current_snapshot())::text")
        row = await cur.fetchone()
        assert row is not None and int(row[0]) > 0


async def test_mongo_wire_server_round_trips_an_upsert() -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(MONGO_URL)
    try:
        coll = client["learnflow_smoke"]["docs"]
        await coll.delete_many({})
        await coll.update_one({"_id": "a"}, {"$inc": {"n": 1}}, upsert=True)
        await coll.update_one({"_id": "a"}, {"$inc": {"n": 1}}, upsert=True)
        doc = await coll.find_one({"_id": "a"})
        assert doc is not None and doc["n"] == 2
    finally:
        await client.close()
