"""Helpers for the read-side tests: query stubs, command shortcuts, read-model access."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import psycopg
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from learnflow.projections.projector import head, libpq_url
from learnflow.projections.store import EPOCH_FIELD, Document, ReadStore
from learnflow.server import Backend
from learnflow.settings import Settings
from learnflow.v1 import (
    audit_pb2_grpc,
    courses_pb2_grpc,
    discussion_pb2,
    discussion_pb2_grpc,
    learning_pb2,
    learning_pb2_grpc,
)
from tests.support import Caller

PROJECTOR_TASK = "learnflow-projector"


def catalog(channel: grpc.aio.Channel) -> courses_pb2_grpc.CatalogServiceAsyncStub:
    return courses_pb2_grpc.CatalogServiceStub(channel)


def progress(channel: grpc.aio.Channel) -> learning_pb2_grpc.ProgressServiceAsyncStub:
    return learning_pb2_grpc.ProgressServiceStub(channel)


def comment_queries(
    channel: grpc.aio.Channel,
) -> discussion_pb2_grpc.CommentQueryServiceAsyncStub:
    return discussion_pb2_grpc.CommentQueryServiceStub(channel)


def audit(channel: grpc.aio.Channel) -> audit_pb2_grpc.AuditServiceAsyncStub:
    return audit_pb2_grpc.AuditServiceStub(channel)


async def complete(who: Caller, course_id: str, lesson_id: str) -> str:
    reply = await learning_pb2_grpc.LearningServiceStub(who.channel).CompleteLesson(
        learning_pb2.CompleteLessonRequest(course_id=course_id, lesson_id=lesson_id),
        metadata=who.metadata(),
    )
    return reply.consistency_token


async def comment(
    who: Caller, course_id: str, lesson_id: str, body: str, parent_id: str = ""
) -> discussion_pb2.CreateCommentResponse:
    return await discussion_pb2_grpc.DiscussionServiceStub(who.channel).CreateComment(
        discussion_pb2.CreateCommentRequest(
            course_id=course_id, lesson_id=lesson_id, body=body, parent_id=parent_id
        ),
        metadata=who.metadata(),
    )


async def active_db(
    settings: Settings,
) -> tuple[AsyncMongoClient[Document], AsyncDatabase[Document]]:
    store = ReadStore.connect(settings.mongo_url, settings.mongo_database)
    return store.client, await store.active(max_age_s=0)


def strip_ids(docs: list[Document]) -> list[Document]:
    return [{k: v for k, v in doc.items() if k != "_id"} for doc in docs]


async def settle(postgres_url: str, store: ReadStore, timeout_s: float = 10.0) -> str:
    """Waits until the read models include every committed event; returns that token."""
    async with await psycopg.AsyncConnection.connect(libpq_url(postgres_url)) as conn:
        last = await head(conn)
    if last is None:
        return ""
    await store.wait_for(last.token(), timeout_s)
    return last.token()


@asynccontextmanager
async def projector_stopped(backend: Backend) -> AsyncIterator[None]:
    """Kills the server's projector (its connection drops, the advisory lock with it) and
    starts a new one afterwards."""
    await stop_projector(backend)
    try:
        yield
    finally:
        start_projector(backend)


async def stop_projector(backend: Backend) -> None:
    for task in [t for t in backend.tasks if t.get_name() == PROJECTOR_TASK or _is_run(t)]:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        backend.tasks.remove(task)


def start_projector(backend: Backend) -> None:
    task = asyncio.create_task(backend.projector.run(backend.stop), name=PROJECTOR_TASK)
    backend.tasks.append(task)


def _is_run(task: asyncio.Task[None]) -> bool:
    code = getattr(task.get_coro(), "cr_code", None)
    return code is not None and code.co_qualname == "Projector.run"


async def snapshot(db: AsyncDatabase[Document]) -> dict[str, list[Document]]:
    """Every read-model document by collection, sorted by _id, without the projector's
    bookkeeping (checkpoints, and the epoch of the leader that wrote each document, which
    a rebuild does not set)."""
    out: dict[str, list[Document]] = {}
    for name in sorted(await db.list_collection_names()):
        if name == "checkpoints":
            continue
        docs = await db[name].find({}, {EPOCH_FIELD: 0}).to_list()
        out[name] = sorted(docs, key=lambda d: str(d["_id"]))
    return out
