"""Headers <-> metadata in both directions, and request ids."""

from __future__ import annotations

import base64
import uuid

import httpx
import pytest

from gateway.metadata import HeaderError, parse_grpc_timeout


async def test_forwarded_headers_reach_the_backend(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/v1/echo",
        headers={
            "Authorization": "Bearer abc",
            "X-Request-Id": "req-123",
            "X-Consistency-Token": "ct-9",
            "Grpc-Metadata-Tenant": "acme",
            "Grpc-Metadata-Blob-Bin": base64.b64encode(b"\x00\xff").decode(),
            "X-Forwarded-For": "203.0.113.7",
            "Cookie": "secret=1",
        },
    )
    assert response.status_code == 200
    seen = response.json()["metadata"]
    assert seen["authorization"] == "Bearer abc"
    assert seen["x-request-id"] == "req-123"
    assert seen["x-consistency-token"] == "ct-9"
    assert seen["tenant"] == "acme"
    assert seen["blob-bin"] == "00ff"
    assert seen["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
    assert "cookie" not in seen


async def test_gateway_managed_metadata_cannot_be_spoofed(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/v1/echo",
        headers={
            "X-Request-Id": "real",
            "Grpc-Metadata-X-Request-Id": "fake",
            "Grpc-Metadata-X-Forwarded-For": "10.9.9.9",
        },
    )
    seen = response.json()["metadata"]
    assert seen["x-request-id"] == "real"
    assert seen["x-forwarded-for"] == "127.0.0.1"


async def test_response_metadata_becomes_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/echo")
    assert response.headers["grpc-metadata-x-echo-initial"] == "yes"
    assert response.headers["grpc-metadata-x-echo-trailer"] == "done"
    assert response.headers["x-consistency-token"] == "tok-42"
    # Binary metadata has no header form.
    assert "grpc-metadata-x-secret-bin" not in response.headers
    assert not any(k.startswith("grpc-metadata-grpc-") for k in response.headers)


async def test_request_id_is_generated_and_echoed(client: httpx.AsyncClient) -> None:
    generated = await client.get("/v1/echo")
    rid = generated.headers["x-request-id"]
    assert uuid.UUID(rid).version == 4
    assert generated.json()["metadata"]["x-request-id"] == rid
    echoed = await client.get("/v1/echo", headers={"X-Request-Id": "mine-1"})
    assert echoed.headers["x-request-id"] == "mine-1"
    # Errors and non-API endpoints carry it too.
    missing = await client.get("/nowhere", headers={"X-Request-Id": "mine-2"})
    assert missing.headers["x-request-id"] == "mine-2"
    health = await client.get("/healthz")
    assert uuid.UUID(health.headers["x-request-id"])


async def test_unusable_request_id_is_replaced(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/echo", headers={"X-Request-Id": "x" * 300})
    assert uuid.UUID(response.headers["x-request-id"])


async def test_bad_metadata_headers_are_400(client: httpx.AsyncClient) -> None:
    reserved = await client.get("/v1/echo", headers={"Grpc-Metadata-Grpc-Foo": "x"})
    assert reserved.status_code == 400
    assert "grpc-foo" in reserved.json()["message"]
    not_base64 = await client.get("/v1/echo", headers={"Grpc-Metadata-Data-Bin": "@@@"})
    assert not_base64.status_code == 400


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("5S", 5.0), ("100m", 0.1), ("2M", 120.0), ("1H", 3600.0), ("250u", 0.00025), ("7n", 7e-9)],
)
def test_grpc_timeout_units(header: str, seconds: float) -> None:
    assert parse_grpc_timeout(header) == pytest.approx(seconds)


@pytest.mark.parametrize("header", ["", "5", "S", "123456789S", "1.5S", "5s"])
def test_grpc_timeout_rejects_malformed(header: str) -> None:
    with pytest.raises(HeaderError):
        parse_grpc_timeout(header)
