"""The audit trail for admins: newest first, by actor, action and/or resource."""

from __future__ import annotations

from typing import Any

from pymongo import DESCENDING

from learnflow.context import Ctx, current_call
from learnflow.errors import FieldViolation, InvalidArgument, PermissionDenied
from learnflow.queries.pagination import decode_token, encode_token, page_size
from learnflow.queries.read_models import ReadModels
from learnflow.v1 import audit_pb2, audit_pb2_grpc
from learnflow.values import parse_timestamp


def audit_message(doc: dict[str, Any]) -> audit_pb2.AuditEvent:
    return audit_pb2.AuditEvent(
        id=str(doc["_id"]),
        actor_id=doc["actor_id"],
        action=doc["action"],
        resource=doc["resource"],
        outcome=doc["outcome"],
        request_id=doc["request_id"],
        client_address=doc["client_address"],
        create_time=parse_timestamp(doc["occurred_at"]),
    )


class AuditQueries(audit_pb2_grpc.AuditServiceServicer):
    def __init__(self, read_models: ReadModels) -> None:
        self.read_models = read_models

    async def ListAuditEvents(
        self, request: audit_pb2.ListAuditEventsRequest, context: Ctx = None
    ) -> audit_pb2.ListAuditEventsResponse:
        principal = current_call().principal
        if principal is None or not principal.is_admin:  # the interceptor checks it first
            raise PermissionDenied("only admins read the audit trail")
        size = page_size(request.page_size, 50)
        if len(request.action) > 100:
            raise InvalidArgument([FieldViolation("action", "at most 100 characters")])
        query: dict[str, Any] = {}
        if request.actor_id:
            query["actor_id"] = request.actor_id
        if request.action:
            query["action"] = request.action
        if request.resource:
            query["resource"] = request.resource
        scope = f"audit|{request.actor_id}|{request.action}"
        if request.resource:
            # Appended only when set, so page tokens issued before this filter stay valid.
            scope += f"|{request.resource}"
        after = decode_token(request.page_token, scope)
        if after is not None:
            if not isinstance(after, int):
                raise InvalidArgument([FieldViolation("page_token", "not a page token")])
            query["seq"] = {"$lt": after}
        db = await self.read_models.database()
        docs = (
            await db["audit_events"]
            .find(query)
            .sort([("seq", DESCENDING)])
            .limit(size + 1)
            .to_list()
        )
        response = audit_pb2.ListAuditEventsResponse(
            audit_events=[audit_message(doc) for doc in docs[:size]]
        )
        if len(docs) > size:
            response.next_page_token = encode_token(int(docs[size - 1]["seq"]), scope)
        return response
