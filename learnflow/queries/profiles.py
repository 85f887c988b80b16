"""Profile queries over the `users` read model."""

from __future__ import annotations

from typing import Any

from learnflow.context import Ctx, current_call
from learnflow.errors import NotFound, Unauthenticated
from learnflow.queries.read_models import ReadModels
from learnflow.v1 import identity_pb2, identity_pb2_grpc
from learnflow.values import parse_timestamp

ROLES = {"student": 1, "instructor": 2, "admin": 3}


def user_from_document(doc: dict[str, Any]) -> identity_pb2.User:
    return identity_pb2.User(
        id=doc["_id"],
        email=doc["email"],
        display_name=doc["display_name"],
        role=ROLES.get(doc["role"], 0),  # type: ignore[arg-type]
        disabled=bool(doc.get("disabled")),
        create_time=parse_timestamp(doc.get("created_at")),
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
