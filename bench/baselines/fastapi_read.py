"""The FastAPI baseline: FastAPI + PyMongo async `find_one({_id})` on LearnFlow's read-model
documents, returned as JSON, no authentication.

    BENCH_MONGO_URL=mongodb://127.0.0.1:57018/ BENCH_MONGO_DATABASE=learnflow_g1 \\
        uvicorn bench.baselines.fastapi_read:app --workers 1 --port 8090

`BENCH_MONGO_DATABASE` is the active generation's database (`<mongo_database>_g<N>`), so both
routes read the very documents LearnFlow's GetCourse and GetLesson read:

- `GET /v1/courses/{course_id}`: the `courses` document;
- `GET /v1/courses/{course_id}/lessons/{lesson_id}`: the `lessons` document.

The stack LearnFlow's architecture note describes, at its simplest; written for
bench/read_path.py, never part of the package.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException
from pymongo import AsyncMongoClient

Document = dict[str, Any]

client: AsyncMongoClient[Document] = AsyncMongoClient(
    os.environ.get("BENCH_MONGO_URL", "mongodb://127.0.0.1:57018/"), tz_aware=True
)
db = client[os.environ.get("BENCH_MONGO_DATABASE", "learnflow_g1")]


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    yield
    await client.close()


app = FastAPI(lifespan=lifespan)


@app.get("/v1/courses/{course_id}")
async def get_course(course_id: str) -> Document:
    doc = await db["courses"].find_one({"_id": course_id})
    if doc is None:
        raise HTTPException(status_code=404, detail="course not found")
    return doc


@app.get("/v1/courses/{course_id}/lessons/{lesson_id}")
async def get_lesson(course_id: str, lesson_id: str) -> Document:
    doc = await db["lessons"].find_one({"_id": lesson_id})
    if doc is None or doc["course_id"] != course_id:
        raise HTTPException(status_code=404, detail="lesson not found")
    return doc
