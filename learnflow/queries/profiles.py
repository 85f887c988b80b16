"""Profile queries over the `users` read model: the caller's own profile, and the admins'
directory (ListUsers: search, role and disabled filters, keyset pages ordered by email)."""

from __future__ import annotations

import re
from typing import Any

from pymongo import ASCENDING

from learnflow.context import Ctx, current_call
from learnflow.errors import FieldViolation, InvalidArgument, NotFound, Unauthenticated
from learnflow.projections.accounts import normalise_search
from learnflow.queries.pagination import decode_token, encode_token, page_size
from learnflow.queries.read_models import ReadModels
from learnflow.v1 import identity_pb2, identity_pb2_grpc
from learnflow.values import parse_timestamp, parse_uuid
from learnflow.vocabulary import ROLE_NAMES

MAX_QUERY = 200

ROLES = {"student": 1, "instructor": 2, "admin": 3}


def user_from_document(doc: dict[str, Any]) -> identity_pb2.User:
    return identity_pb2.User(
        id=doc["_id"],
        email=doc["email"],
        display_name=doc["display_name"],
        role=ROLES.get(doc["role"], 0),  # type: ignore[arg-type]
        disabled=bool(doc.get("disabled")),
        create_time=parse_timestamp(doc.get("created_at")),
        bio=doc.get("bio") or "",
        avatar_url=doc.get("avatar_url") or "",
        email_verified=bool(doc.get("email_verified", False)),
    )


class ProfileQueries(identity_pb2_grpc.ProfileServiceServicer):
    def __init__(self, read_models: ReadModels) -> None:
        self.read_models = read_models

    async def GetCurrentUser(
        self,
        request: identity_pb2.GetCurrentUserRequest,
        context: Ctx = None,
    ) -> identity_pb2.GetCurrentUserResponse:
        principal = current_call().principal
        if principal is None:
            raise Unauthenticated("this method requires an access token")
        db = await self.read_models.database()
        doc = await self.read_models.get(db, "users", str(principal.user_id))
        if doc is None:
            raise NotFound("user", str(principal.user_id))
        return identity_pb2.GetCurrentUserResponse(user=user_from_document(doc))

    async def GetUser(
        self, request: identity_pb2.GetUserRequest, context: Ctx = None
    ) -> identity_pb2.GetUserResponse:
        user_id = str(parse_uuid(request.user_id, "user_id"))
        db = await self.read_models.database()
        doc = await self.read_models.get(db, "users", user_id)
        if doc is None:
            raise NotFound("user", f"users/{user_id}")
        return identity_pb2.GetUserResponse(user=user_from_document(doc))

    async def ListUsers(
        self, request: identity_pb2.ListUsersRequest, context: Ctx = None
    ) -> identity_pb2.ListUsersResponse:
        size = page_size(request.page_size, 20)
        query: dict[str, Any] = {}
        if request.role:
            if request.role not in ROLE_NAMES:
                raise InvalidArgument([FieldViolation("role", "unknown role")])
            query["role"] = ROLE_NAMES[request.role]
        disabled = request.disabled if request.HasField("disabled") else None
        if disabled is not None:
            query["disabled"] = disabled
        if len(request.q) > MAX_QUERY:
            raise InvalidArgument([FieldViolation("q", f"at most {MAX_QUERY} characters")])
        q = normalise_search(request.q)
        if q:
            query["search_terms"] = {"$regex": "^" + re.escape(q)}
        scope = f"users|{query.get('role', '')}|{disabled}|{q}"
        after = decode_token(request.page_token, scope)
        if after is not None:
            query["email"] = {"$gt": str(after)}
        db = await self.read_models.database()
        docs = (
            await db["users"]
            .find(query, {"search_terms": 0})
            .sort([("email", ASCENDING)])
            .limit(size + 1)
            .to_list()
        )
        response = identity_pb2.ListUsersResponse(
            users=[user_from_document(doc) for doc in docs[:size]]
        )
        if len(docs) > size:
            response.next_page_token = encode_token(docs[size - 1]["email"], scope)
        return response
