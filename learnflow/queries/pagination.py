"""Opaque page tokens for keyset pagination.

A token is base64url(JSON) of the last item's sort key and a fingerprint of the query it
belongs to. The next page starts strictly after that key, so items inserted meanwhile never
shift pages (no duplicates, no skipped items, unlike offsets), and a token replayed with other
filters is refused rather than silently giving a wrong page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from learnflow.errors import FieldViolation, InvalidArgument

MAX_PAGE_SIZE = 100
# Tokens this module writes are far shorter; anything longer is not one of ours.
MAX_TOKEN_CHARS = 512
MAX_KEY_CHARS = 256
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def page_size(value: int, default: int) -> int:
    if value < 0:
        raise InvalidArgument([FieldViolation("page_size", "must not be negative")])
    if value == 0:
        return default
    return min(value, MAX_PAGE_SIZE)


def _fingerprint(scope: str) -> str:
    return hashlib.sha256(scope.encode()).hexdigest()[:16]


def encode_token(position: str | int, scope: str) -> str:
    raw = json.dumps({"k": position, "q": _fingerprint(scope)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_token(token: str, scope: str) -> str | int | None:
    """The position after which the page starts, None for the first page."""
    if not token:
        return None
    bad = InvalidArgument(
        [FieldViolation("page_token", "not a page token of this query; start without one")]
    )
    if len(token) > MAX_TOKEN_CHARS:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):
        raise bad from None
    if not isinstance(data, dict) or set(data) != {"k", "q"} or data["q"] != _fingerprint(scope):
        raise bad
    position = data["k"]
    if isinstance(position, str) and len(position) <= MAX_KEY_CHARS:
        return position
    if type(position) is int and INT64_MIN <= position <= INT64_MAX:
        return position
    raise bad
