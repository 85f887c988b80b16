"""The refresh token as a browser cookie (`REFRESH_TOKEN_DELIVERY_COOKIE`).

A web app must keep its refresh token where scripts cannot read it, so that an injected
script cannot steal a long-lived session: an `HttpOnly`, `SameSite=Strict` cookie, sent by the
browser only to the two HTTP paths that consume it (refresh and revoke), which are read from
the contract's own `google.api.http` bindings rather than written twice.

The server speaks metadata, not HTTP: the cookie goes out as `set-cookie` response metadata and
comes back as the `cookie` request metadata. A generic HTTP gateway configured to forward that
cookie and to send `set-cookie` as a real header (never as a script-readable
`Grpc-Metadata-*`) carries both; a gRPC client simply keeps using the body.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from google.api import annotations_pb2

from learnflow.v1 import identity_pb2

# What new_refresh_token() makes ("rt_" + URL-safe base64), within the field's 128 limit.
_TOKEN = re.compile(r"rt_[A-Za-z0-9_-]{1,125}")


def _post_path(method: str) -> str:
    service = identity_pb2.DESCRIPTOR.services_by_name["IdentityService"]
    rule = service.methods_by_name[method].GetOptions().Extensions[annotations_pb2.http]
    path: str = rule.post
    return path


@dataclass(frozen=True)
class SessionCookie:
    """How the refresh-token cookie is named, scoped and read."""

    name: str = "lf_refresh"
    # Lifetime in seconds: the refresh token's own.
    max_age_s: int = 30 * 24 * 3600
    # Secure cookies are sent over HTTPS only (browsers treat http://localhost as secure).
    secure: bool = True
    paths: tuple[str, ...] = (_post_path("RefreshSession"), _post_path("RevokeSession"))

    def read(self, metadata: Iterable[tuple[str, str | bytes]]) -> str:
        """The refresh token in the call's `cookie` metadata, or "" when there is none that
        looks like one (a malformed value is treated as absent, never echoed)."""
        for key, value in metadata:
            if key.lower() != "cookie" or not isinstance(value, str):
                continue
            for part in value.split(";"):
                name, _, token = part.strip().partition("=")
                if name == self.name and _TOKEN.fullmatch(token):
                    return token
        return ""

    def set(self, token: str) -> tuple[tuple[str, str], ...]:
        """`set-cookie` metadata handing `token` over, one entry per path."""
        return self._cookies(token, self.max_age_s)

    def clear(self) -> tuple[tuple[str, str], ...]:
        """`set-cookie` metadata that makes the browser forget the cookie."""
        return self._cookies("", 0)

    def _cookies(self, value: str, max_age_s: int) -> tuple[tuple[str, str], ...]:
        secure = "; Secure" if self.secure else ""
        return tuple(
            (
                "set-cookie",
                f"{self.name}={value}; Path={path}; Max-Age={max_age_s}; HttpOnly"
                f"{secure}; SameSite=Strict",
            )
            for path in self.paths
        )
