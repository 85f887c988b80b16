"""The refusals of the access layer, each carrying a `google.rpc.ErrorInfo` detail.

The interceptor (and the rate limiter) refuse calls before any handler runs; handlers refuse
calls too, with the same status codes (UNAUTHENTICATED for a bad refresh token,
PERMISSION_DENIED for someone else's comment). The ErrorInfo `reason` in domain
`ERROR_DOMAIN` tells them apart for clients, logs and tests: only the access layer sets it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from google.protobuf import any_pb2
from google.rpc import error_details_pb2

from learnflow.errors import PermissionDenied, ResourceExhausted, Unauthenticated
from learnflow.v1 import access_pb2
from learnflow.vocabulary import ROLES

ERROR_DOMAIN = "access.learnflow.v1"

# No token on a method whose audience is AUTHENTICATED.
REASON_TOKEN_REQUIRED = "ACCESS_TOKEN_REQUIRED"
# A token was sent but is not acceptable (forged, expired, revoked, disabled account ...).
REASON_TOKEN_INVALID = "ACCESS_TOKEN_INVALID"
# Authenticated, but the method's access rule lists roles the caller does not hold.
REASON_ROLE_NOT_ALLOWED = "ROLE_NOT_ALLOWED"
# A rate-limit budget is spent; RetryInfo says when to come back.
REASON_RATE_LIMITED = "RATE_LIMITED"

ACCESS_REASONS = frozenset(
    {REASON_TOKEN_REQUIRED, REASON_TOKEN_INVALID, REASON_ROLE_NOT_ALLOWED, REASON_RATE_LIMITED}
)


def error_info(reason: str, metadata: Mapping[str, str]) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata))
    return packed


class AccessUnauthenticated(Unauthenticated):
    def __init__(self, message: str, reason: str, method: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.method = method

    def details(self) -> list[any_pb2.Any]:
        return [error_info(self.reason, {"method": self.method})]


class RoleNotAllowed(PermissionDenied):
    """The ErrorInfo's `allowedRoles` metadata lists, comma-separated and in the contract's
    enum names (`ROLE_INSTRUCTOR,ROLE_ADMIN`, as the JSON of `User.role` spells them), the
    roles that may call: the client can tell the user what they lack without a second source
    of access rules."""

    def __init__(self, message: str, method: str, allowed_roles: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.method = method
        # In the contract's order (student, instructor, admin), whatever order the rule has.
        self.allowed_roles = sorted(set(allowed_roles), key=lambda r: ROLES.get(r, 0))

    def details(self) -> list[any_pb2.Any]:
        metadata = {"method": self.method}
        if self.allowed_roles:
            metadata["allowedRoles"] = ",".join(
                access_pb2.Role.Name(ROLES[r]) for r in self.allowed_roles if r in ROLES
            )
        return [error_info(REASON_ROLE_NOT_ALLOWED, metadata)]


class RateLimited(ResourceExhausted):
    """RESOURCE_EXHAUSTED with RetryInfo (from the base class) and ErrorInfo naming the budget."""

    def __init__(self, message: str, retry_after_s: float, scope: str, limit: str) -> None:
        super().__init__(message, retry_after_s)
        self.scope = scope
        self.limit = limit

    def details(self) -> list[any_pb2.Any]:
        info = error_info(REASON_RATE_LIMITED, {"scope": self.scope, "limit": self.limit})
        return [*super().details(), info]
