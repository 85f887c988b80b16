"""Progress queries: the dashboard, one course's progress, a progress watch stream, and a
course's roster for its staff (every learner's progress, in one of three orders).

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

from pymongo import ASCENDING, DESCENDING

from learnflow.context import Ctx, Principal, current_call
from learnflow.errors import (
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from learnflow.projections.learning import progress_id
from learnflow.projections.store import Document
from learnflow.queries.pagination import decode_token, encode_token, page_size
from learnflow.queries.read_models import ReadModels
from learnflow.v1 import learning_pb2, learning_pb2_grpc
from learnflow.values import parse_timestamp, require_uuid
from learnflow.vocabulary import course_name, enrollment_state, is_course_staff

# The roster's `order_by` (AIP-132: a field, then " desc" or nothing) and its keyset key.
ROSTER_KEYS = {
    "display_name": "name_key",
    "percent_complete": "percent_key",
    "last_activity_time": "roster_activity_key",
}


def roster_order(value: str) -> tuple[str, int]:
    """(keyset key, direction) of a roster `order_by`; by display name when empty."""
    words = value.strip().lower().split() or ["display_name"]
    field, direction = words[0], words[1:]
    if field not in ROSTER_KEYS or direction not in ([], ["asc"], ["desc"]):
        choices = ", ".join(ROSTER_KEYS)
        raise InvalidArgument(
            [FieldViolation("order_by", f"must be one of {choices}, optionally with ' desc'")]
        )
    return ROSTER_KEYS[field], DESCENDING if direction == ["desc"] else ASCENDING


def roster_entry(doc: dict[str, Any]) -> learning_pb2.RosterEntry:
    return learning_pb2.RosterEntry(
        user_id=doc["user_id"],
        display_name=doc.get("display_name") or "",
        state=enrollment_state(doc.get("state") or ""),
        enroll_time=parse_timestamp(doc.get("enrolled_at")),
        percent_complete=doc.get("percent_complete") or 0,
        completed_lesson_count=len(doc.get("completed_lesson_ids") or []),
        quiz_best_scores={k: int(v) for k, v in (doc.get("quiz_best_scores") or {}).items()},
        last_activity_time=parse_timestamp(doc.get("last_activity_at")),
        complete_time=parse_timestamp(doc.get("completed_at")),
    )


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

    async def ListCourseEnrollments(
        self, request: learning_pb2.ListCourseEnrollmentsRequest, context: Ctx = None
    ) -> learning_pb2.ListCourseEnrollmentsResponse:
        """The roster, for the course's owner and admins. Like a lesson: NOT_FOUND for a
        course the caller may not see (a draft, a deleted or missing course), PERMISSION_DENIED
        for one they may (published or archived) but do not teach."""
        principal = _principal()
        require_uuid(request.course_id, "course_id")
        key, direction = roster_order(request.order_by)
        size = page_size(request.page_size, 20)
        db = await self.read_models.database()
        course = await self.read_models.get(db, "courses", request.course_id)
        if course is None or course.get("deleted"):
            raise NotFound("course", course_name(request.course_id))
        if not is_course_staff(principal, course["owner_id"]):
            if course["state"] == "draft":
                raise NotFound("course", course_name(request.course_id))
            raise PermissionDenied("only the course's owner or an admin may see its learners")
        scope = f"roster|{request.course_id}|{key}|{direction}"
        after = decode_token(request.page_token, scope)
        query: dict[str, Any] = {"course_id": request.course_id}
        if after is not None:
            query[key] = {"$gt" if direction == ASCENDING else "$lt": str(after)}
        docs = await db["progress"].find(query).sort([(key, direction)]).limit(size + 1).to_list()
        response = learning_pb2.ListCourseEnrollmentsResponse(
            enrollments=[roster_entry(doc) for doc in docs[:size]]
        )
        if len(docs) > size:
            response.next_page_token = encode_token(str(docs[size - 1][key]), scope)
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
        require_uuid(request.course_id, "course_id")
        doc_id = progress_id(str(_principal().user_id), request.course_id)
        doc = await self._progress(request.course_id, doc_id)
        return learning_pb2.GetCourseProgressResponse(progress=progress_message(doc))

    async def WatchCourseProgress(
        self, request: learning_pb2.WatchCourseProgressRequest, context: Ctx = None
    ) -> AsyncIterator[learning_pb2.WatchCourseProgressResponse]:
        require_uuid(request.course_id, "course_id")
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
