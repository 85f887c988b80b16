"""The gateway's CORS middleware answers exactly as Starlette's, with or without `Origin`."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.datastructures import MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.types import Message, Receive, Scope, Send

from gateway.app import SameOriginFastCORS, set_header

RESPONSE_HEADERS: list[list[tuple[bytes, bytes]]] = [
    [],
    [(b"content-type", b"application/json")],
    [(b"vary", b"Accept-Encoding")],
    [(b"vary", b"Accept-Encoding"), (b"etag", b'"x"'), (b"vary", b"authorization")],
    [(b"x-request-id", b"r"), (b"vary", b"")],
]
REQUEST_HEADERS: list[list[tuple[bytes, bytes]]] = [
    [],
    [(b"accept", b"*/*")],
    [(b"origin", b"https://app.example")],  # allowed
    [(b"origin", b"https://evil.example")],  # not allowed
    [
        (b"origin", b"https://app.example"),
        (b"access-control-request-method", b"PATCH"),
    ],
]


def app_answering(headers: list[tuple[bytes, bytes]]) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": list(headers)})
        await send({"type": "http.response.body", "body": b"{}"})

    return app


async def answer(middleware: type[CORSMiddleware], request: Any, response: Any) -> list[Any]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    cors = middleware(
        app_answering(response),
        allow_origins=["https://app.example"],
        allow_methods=["GET", "PATCH"],
        allow_headers=["authorization"],
        expose_headers=["x-request-id"],
        max_age=600,
    )
    method = "OPTIONS" if any(k == b"access-control-request-method" for k, _ in request) else "GET"
    scope = {"type": "http", "method": method, "path": "/v1/x", "headers": list(request)}
    await cors(scope, receive, send)
    return [(m["type"], m.get("status"), m.get("headers"), m.get("body")) for m in sent]


@pytest.mark.parametrize("request_headers", REQUEST_HEADERS)
@pytest.mark.parametrize("response_headers", RESPONSE_HEADERS)
async def test_answers_as_starlettes_cors(
    request_headers: list[tuple[bytes, bytes]], response_headers: list[tuple[bytes, bytes]]
) -> None:
    theirs = await answer(CORSMiddleware, request_headers, response_headers)
    ours = await answer(SameOriginFastCORS, request_headers, response_headers)
    assert ours == theirs


@pytest.mark.parametrize("headers", RESPONSE_HEADERS)
@pytest.mark.parametrize("name", [b"vary", b"x-request-id", b"etag"])
def test_set_header_is_mutable_headers_assignment(
    headers: list[tuple[bytes, bytes]], name: bytes
) -> None:
    ours: Message = {"type": "http.response.start", "headers": list(headers)}
    theirs: Message = {"type": "http.response.start", "headers": list(headers)}
    set_header(ours, name, b"new")
    MutableHeaders(scope=theirs)[name.decode()] = "new"
    assert ours["headers"] == theirs["headers"]
