"""Per-call context (principal, request id, client address), set by the interceptors.

Kept in contextvars so handlers read it without threading it through every call.
"""

from __future__ import annotations

import contextvars
import functools
import uuid
from dataclasses import dataclass
from typing import Any

import grpc


@dataclass(frozen=True)
class Principal:
    user_id: uuid.UUID
    role: str  # "student" | "instructor" | "admin"
    token_version: int = 0

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    # Text forms, made once per principal: a verified token's principal is kept with it and
    # read on every call (rate-limit subject, ownership checks, read-model keys).
    @functools.cached_property
    def user_text(self) -> str:
        return str(self.user_id)

    @functools.cached_property
    def subject(self) -> str:
        """Who the call counts against in rate limits and stream caps."""
        return f"user:{self.user_id}"


@dataclass(frozen=True)
class CallContext:
    method: str = ""
    request_id: str = ""
    client_address: str = ""
    principal: Principal | None = None
    consistency_token: str = ""

    @property
    def actor_id(self) -> uuid.UUID | None:
        return self.principal.user_id if self.principal else None


_NO_CALL = CallContext()
_current: contextvars.ContextVar[CallContext | None] = contextvars.ContextVar(
    "learnflow_call", default=None
)


def current_call() -> CallContext:
    return _current.get() or _NO_CALL


def set_call(call: CallContext) -> contextvars.Token[CallContext | None]:
    return _current.set(call)


def reset_call(token: contextvars.Token[CallContext | None]) -> None:
    _current.reset(token)


# Handlers take the gRPC context for the servicer signature but never need it, so that the
# same handlers run in-process (demo data, admin commands) with no gRPC call around them.
Ctx = grpc.aio.ServicerContext[Any, Any] | None


def add_trailing_metadata(context: Ctx, *pairs: tuple[str, str]) -> None:
    """Adds to what the call already set for its trailers (gRPC keeps only the last set)."""
    if context is None:
        return
    given = tuple(context.trailing_metadata() or ())
    context.set_trailing_metadata((*given, *pairs))
