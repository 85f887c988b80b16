"""Page tokens: whatever a client crafts, decoding answers a value or INVALID_ARGUMENT."""

from __future__ import annotations

import base64
import json

import grpc
import pytest

from learnflow.errors import InvalidArgument
from learnflow.queries.pagination import _fingerprint, decode_token, encode_token
from learnflow.v1 import audit_pb2, courses_pb2, courses_pb2_grpc
from tests.read_support import audit
from tests.support import Caller, field_violations


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _token(payload: object) -> str:
    return _b64(json.dumps(payload).encode())


SCOPE = "audit||"


@pytest.mark.parametrize("position", ["2026-01-01T00:00:00|abc", 0, 41, -5, 2**63 - 1])
def test_tokens_round_trip(position: str | int) -> None:
    assert decode_token(encode_token(position, SCOPE), SCOPE) == position


@pytest.mark.parametrize(
    "token",
    [
        _b64(b"[" * 2000),  # used to escape as RecursionError (a 500)
        _b64(b"[" * 300),
        _token({"k": 10**30, "q": _fingerprint(SCOPE)}),  # beyond int64: bson refuses it
        _token({"k": -(2**63) - 1, "q": _fingerprint(SCOPE)}),
        _token({"k": "x" * 300, "q": _fingerprint(SCOPE)}),
        _token({"k": 1.5, "q": _fingerprint(SCOPE)}),
        _token({"k": True, "q": _fingerprint(SCOPE)}),
        _token({"k": None, "q": _fingerprint(SCOPE)}),
        _token({"k": {"$gt": ""}, "q": _fingerprint(SCOPE)}),
        _token({"k": 1, "q": _fingerprint("other")}),
        _token({"k": 1, "q": _fingerprint(SCOPE), "extra": 1}),
        _token([1, 2]),
        _b64(b"\xff\xfe"),
        "not base64 !",
        "A" * 10_000,
    ],
)
def test_crafted_tokens_are_invalid_argument(token: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        decode_token(token, SCOPE)
    assert [v.field for v in refused.value.violations] == ["page_token"]


async def test_a_crafted_audit_token_is_invalid_argument(
    channel: grpc.aio.Channel, admin: Caller
) -> None:
    for token in (
        _token({"k": 10**30, "q": _fingerprint("audit||")}),
        _b64(b"[" * 2000),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await audit(channel).ListAuditEvents(
                audit_pb2.ListAuditEventsRequest(page_token=token), metadata=admin.metadata()
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value
        assert "page_token" in field_violations(err.value)


async def test_a_deeply_nested_catalog_token_is_invalid_argument(
    channel: grpc.aio.Channel,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await courses_pb2_grpc.CatalogServiceStub(channel).ListCourses(
            courses_pb2.ListCoursesRequest(page_token=_b64(b"[" * 2000))
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value
