"""Test helpers: registered callers with tokens, status details."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import grpc
import jwt
import psycopg
from google.rpc import error_details_pb2, status_pb2

from learnflow.v1 import access_pb2, identity_pb2, identity_pb2_grpc

PASSWORD = "a-good-password"


def token_subject(access_token: str) -> str:
    """The user id an access token was issued to (read, not verified: the test's own token)."""
    claims: dict[str, Any] = jwt.decode(access_token, options={"verify_signature": False})
    return str(claims["sub"])


@dataclass
class Caller:
    channel: grpc.aio.Channel
    user: identity_pb2.User
    access_token: str
    refresh_token: str
    consistency_token: str

    @classmethod
    async def register(cls, channel: grpc.aio.Channel, name: str = "Test User") -> Caller:
        stub = identity_pb2_grpc.IdentityServiceStub(channel)
        email = f"user-{uuid.uuid4().hex[:12]}@example.com"
        await stub.RegisterUser(
            identity_pb2.RegisterUserRequest(email=email, password=PASSWORD, display_name=name)
        )
        session = await stub.CreateSession(
            identity_pb2.CreateSessionRequest(email=email, password=PASSWORD)
        )
        # RegisterUser answers without the user (it must not tell new emails from taken
        # ones); the id is the subject of the caller's own access token.
        user = identity_pb2.User(
            id=token_subject(session.access_token),
            email=email,
            display_name=name,
            role=access_pb2.ROLE_STUDENT,
        )
        return cls(
            channel,
            user,
            session.access_token,
            session.refresh_token,
            session.consistency_token,
        )

    @classmethod
    async def with_role(
        cls, channel: grpc.aio.Channel, postgres_url: str, role: str, name: str = "Staff"
    ) -> Caller:
        """A registered user promoted to `role` and logged in again.

        The first admin has to come from outside the API; tests promote through SQL the way
        an operator would bootstrap one, then every later role change goes through the API.
        """
        first = await cls.register(channel, name=name)
        url = postgres_url.replace("postgresql+psycopg://", "postgresql://", 1)
        async with await psycopg.AsyncConnection.connect(url) as conn:
            await conn.execute("UPDATE users SET role = %s WHERE id = %s", (role, first.user_id))
        stub = identity_pb2_grpc.IdentityServiceStub(channel)
        session = await stub.CreateSession(
            identity_pb2.CreateSessionRequest(email=first.user.email, password=PASSWORD)
        )
        first.user.role = {"student": 1, "instructor": 2, "admin": 3}[role]  # type: ignore[assignment]
        return cls(
            channel,
            first.user,
            session.access_token,
            session.refresh_token,
            first.consistency_token,
        )

    def metadata(self, consistency_token: str = "") -> tuple[tuple[str, str], ...]:
        md: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {self.access_token}"),)
        if consistency_token:
            md += (("x-consistency-token", consistency_token),)
        return md

    @property
    def user_id(self) -> str:
        return self.user.id


def rich_status(error: grpc.aio.AioRpcError) -> status_pb2.Status:
    metadata: Any = error.trailing_metadata() or ()
    for key, value in metadata:
        if key == "grpc-status-details-bin":
            assert isinstance(value, bytes)
            return status_pb2.Status.FromString(value)
    raise AssertionError("no google.rpc.Status details on the error")


def field_violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    for detail in rich_status(error).details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            return {v.field: v.description for v in bad.field_violations}
    raise AssertionError("no BadRequest detail")
