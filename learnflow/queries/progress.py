"""Progress queries: the dashboard, one course's progress, and a progress watch stream.

WatchCourseProgress sends the current progress, then the document again whenever its
versions (`v`, `v_course`: positions of the last events applied to it) change. It wakes when
the projector in this process writes a batch (`ReadStore.wait_changed`) and otherwise re-reads every
`watch_poll_s`: a replica whose projector stands by still sees changes, within that interval.
With nothing to report, it sends the current state again every `heartbeat_s`. The interceptor
bounds streams per user and in duration, and ends them when their session ends.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from learnflow.context import Ctx, Principal, current_call
from learnflow.errors import NotFound, Unauthenticated
from learnflow.projections.learning import progress_id
from learnflow.projections.store import Document
from learnflow.queries.pagination import decode_token, encode_token, page_size
from learnflow.queries.read_models import ReadModels
from learnflow.v1 import learning_pb2, learning_pb2_grpc
from learnflow.values import parse_timestamp, parse_uuid
from learnflow.vocabulary import enrollment_state


def progress_message(doc: dict[str, Any]) -> learning_pb2.CourseProgress:
    return learning_pb2.CourseProgress(
        course_id=doc["course_id"],
        course_title=doc.get("course_title") or "",
        state=enrollment_state(doc.get("state") or ""),
        completed_lesson_ids=list(doc.get("completed_lesson_ids") or []),
        lesson_count=doc.get("lesson_count") or 0,
        percent_complete=doc.get("percent_complete") or 0,
        quiz_best_scores={k: int(v) for k, v in (doc.get("quiz_best_scores") or {}).items()},
        last_activity_time=parse_timestamp(doc.get("last_activity_at")),
        last_lesson_id=doc.get("last_lesson_id") or "",
        next_lesson_id=doc.get("next_lesson_id") or "",
        certificate_id=doc.get("certificate_id") or "",
    )


def _principal() -> Principal:
    principal = current_call().principal
    if principal is None:
        raise Unauthenticated("this method requires an access token")
    return principal


class ProgressQueries(learning_pb2_grpc.ProgressServiceServicer):
    def __init__(
        self, read_models: ReadModels, watch_poll_s: float = 1.0, heartbeat_s: float = 15.0
    ) -> None:
        self.read_models = read_models
        self.watch_poll_s = watch_poll_s
        self.heartbeat_s = heartbeat_s

    async def ListMyEnrollments(
        self, request: learning_pb2.ListMyEnrollmentsRequest, context: Ctx = None
    ) -> learning_pb2.ListMyEnrollmentsResponse:
        user_id = str(_principal().user_id)
        size = page_size(request.page_size, 20)
        after = decode_token(request.page_token, f"enrollments|{user_id}")
        db = await self.read_models.database()
        dashboard = await self.read_models.get(db, "dashboards", user_id)
        entries = sorted(
            (dashboard or {}).get("courses", {}).values(),
            key=lambda e: str(e["activity_key"]),
            reverse=True,
        )
        if after is not None:
            entries = [e for e in entries if str(e["activity_key"]) < str(after)]
        response = learning_pb2.ListMyEnrollmentsResponse(
            enrollments=[progress_message(e) for e in entries[:size]]
        )
        if len(entries) > size:
            response.next_page_token = encode_token(
                entries[size - 1]["activity_key"], f"enrollments|{user_id}"
            )
        return response

    async def _progress(self, course_id: str, doc_id: str, fresh: bool = False) -> Document:
        if fresh:
            db = await self.read_models.store.active()
            doc = await db["progress"].find_one({"_id": doc_id})
        else:
            db = await self.read_models.database()
            doc = await self.read_models.get(db, "progress", doc_id)
        if doc is None:
            raise NotFound("enrollment", f"courses/{course_id}/enrollments/me")
        return doc

    async def GetCourseProgress(
        self, request: learning_pb2.GetCourseProgressRequest, context: Ctx = None
    ) -> learning_pb2.GetCourseProgressResponse:
        parse_uuid(request.course_id, "course_id")
        doc_id = progress_id(str(_principal().user_id), request.course_id)
        doc = await self._progress(request.course_id, doc_id)
        return learning_pb2.GetCourseProgressResponse(progress=progress_message(doc))

    async def WatchCourseProgress(
        self, request: learning_pb2.WatchCourseProgressRequest, context: Ctx = None
    ) -> AsyncIterator[learning_pb2.WatchCourseProgressResponse]:
        parse_uuid(request.course_id, "course_id")
        doc_id = progress_id(str(_principal().user_id), request.course_id)
        doc = await self._progress(request.course_id, doc_id)
        version = (doc.get("v"), doc.get("v_course"))
        yield learning_pb2.WatchCourseProgressResponse(progress=progress_message(doc))
        store = self.read_models.store
        last_sent = time.monotonic()
        while True:
            await store.wait_changed(self.watch_poll_s)
            db = await store.active()
            current = await db["progress"].find_one({"_id": doc_id})
            changed = current is not None and (current.get("v"), current.get("v_course")) != version
            if current is not None and (
                changed or time.monotonic() - last_sent >= self.heartbeat_s
            ):
                # A change, or the same state again as a heartbeat: proxies and clients see
                # the stream alive, and a client that missed a message is brought up to date.
                version = (current.get("v"), current.get("v_course"))
                last_sent = time.monotonic()
                yield learning_pb2.WatchCourseProgressResponse(progress=progress_message(current))
