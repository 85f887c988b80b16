"""The gateway's edge layer answers exactly as the middlewares it replaces: Starlette's CORS
middleware (with or without `Origin`, preflight included), `MutableHeaders` assignment for
the request id, the header-size limits' 431, and the split between the gateway's own
endpoints and the transcoder."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.edge import CorsOptions, Edge, decorate_start, request_id_of
from gateway.metadata import request_id_from
from gateway.metrics import HttpMetrics

RESPONSE_HEADERS: list[list[tuple[bytes, bytes]]] = [
    [],
    [(b"content-type", b"application/json")],
    [(b"vary", b"Accept-Encoding")],
    [(b"vary", b"Accept-Encoding"), (b"etag", b'"x"'), (b"vary", b"authorization")],
    [(b"x-request-id", b"r"), (b"vary", b"")],
    [(b"x-request-id", b"a"), (b"etag", b'"x"'), (b"x-request-id", b"b")],
]
REQUEST_HEADERS: list[list[tuple[bytes, bytes]]] = [
    [],
    [(b"accept", b"*/*")],
    [(b"x-request-id", b"client-chosen.id_1")],
    [(b"x-request-id", b"not a sane id\n")],
    [(b"origin", b"https://app.example")],  # allowed
    [(b"origin", b"https://evil.example")],  # not allowed
    [
        (b"origin", b"https://app.example"),
        (b"access-control-request-method", b"PATCH"),
    ],
]
CORS = CorsOptions(
    allow_origins=("https://app.example",),
    allow_methods=("GET", "PATCH"),
    allow_headers=("authorization",),
    expose_headers=("x-request-id",),
    max_age=600,
)


def app_answering(headers: list[tuple[bytes, bytes]], tag: bytes = b"{}") -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": list(headers)})
        await send({"type": "http.response.body", "body": tag})

    return app


def with_request_id(app: ASGIApp) -> ASGIApp:
    """What the gateway did before the edge: its request-id middleware around CORS."""

    async def outer(scope: Scope, receive: Receive, send: Send) -> None:
        request_id = scope["state"]["request_id"]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                MutableHeaders(scope=message)["x-request-id"] = request_id
            await send(message)

        await app(scope, receive, send_with_id)

    return outer


def scope_of(request: list[tuple[bytes, bytes]], path: str = "/v1/x") -> Scope:
    method = "OPTIONS" if any(k == b"access-control-request-method" for k, _ in request) else "GET"
    return {"type": "http", "method": method, "path": path, "headers": list(request)}


async def run(app: ASGIApp, scope: Scope) -> list[Any]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return [(m["type"], m.get("status"), m.get("headers"), m.get("body")) for m in sent]


def edge(
    fixed: ASGIApp, api: ASGIApp, *, claims: bool = False, metrics: HttpMetrics | None = None
) -> Edge:
    return Edge(
        fixed,
        api,
        lambda scope: claims,
        cors=CORS,
        refusal=lambda problem: PlainTextResponse(problem, status_code=431),
        max_header_bytes=64,
        max_total_bytes=200,
        metrics=metrics,
        log_sample=0.0,
    )


@pytest.mark.parametrize("request_headers", REQUEST_HEADERS)
@pytest.mark.parametrize("response_headers", RESPONSE_HEADERS)
@pytest.mark.parametrize("claims", [False, True])
async def test_answers_as_starlettes_cors_under_the_request_id(
    request_headers: list[tuple[bytes, bytes]],
    response_headers: list[tuple[bytes, bytes]],
    claims: bool,
) -> None:
    fixed = app_answering(response_headers, b"fixed")
    api = app_answering(response_headers, b"api")
    ours_scope = scope_of(request_headers)
    ours = await run(edge(fixed, api, claims=claims), ours_scope)
    request_id = ours_scope["state"]["request_id"]
    if request_headers == [(b"x-request-id", b"client-chosen.id_1")]:
        assert request_id == "client-chosen.id_1"
    else:
        assert len(request_id) == 36  # a fresh one
    theirs_scope = {**scope_of(request_headers), "state": {"request_id": request_id}}
    reference = with_request_id(CORS.around(fixed if claims else api))
    assert ours == await run(reference, theirs_scope)


@pytest.mark.parametrize("headers", RESPONSE_HEADERS)
@pytest.mark.parametrize("vary_origin", [False, True])
def test_decorate_start_is_mutable_headers_assignment(
    headers: list[tuple[bytes, bytes]], vary_origin: bool
) -> None:
    ours: Message = {"type": "http.response.start", "headers": list(headers)}
    theirs: Message = {"type": "http.response.start", "headers": list(headers)}
    decorate_start(ours, b"new-id", vary_origin)
    mutable = MutableHeaders(scope=theirs)
    if vary_origin:
        mutable["Vary"] = ", ".join([*mutable.getlist("Vary"), "Origin"])
    mutable["X-Request-Id"] = "new-id"
    assert ours["headers"] == theirs["headers"]


@pytest.mark.parametrize(
    "given",
    [b"abc", b"a" * 64, b"a" * 65, b"bad id", b"", "é".encode("latin-1"), b"x.y_z-1"],
)
def test_request_id_of_raw_headers_is_request_id_from(given: bytes) -> None:
    raw = [(b"accept", b"*/*"), (b"x-request-id", given), (b"x-request-id", b"second")]
    ours = request_id_of(raw)
    theirs = request_id_from(Headers(raw=raw))
    if given.decode("latin-1") == theirs:
        assert ours == theirs  # the client's own, kept
    else:
        assert ours != given.decode("latin-1") and len(ours) == len(theirs) == 36  # fresh ids


@pytest.mark.parametrize("origin", [None, b"https://app.example", b"https://evil.example"])
async def test_oversized_headers_are_refused_before_either_app_with_cors(
    origin: bytes | None,
) -> None:
    reached: list[str] = []

    def recording(name: str) -> ASGIApp:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            reached.append(name)

        return app

    metrics = HttpMetrics()
    request = [(b"x-padding", b"p" * 100), *([(b"origin", origin)] if origin else [])]
    sent = await run(edge(recording("fixed"), recording("api"), metrics=metrics), scope_of(request))
    assert reached == []
    assert sent[0][1] == 431
    headers = dict(sent[0][2])
    assert b"x-request-id" in headers
    if origin == b"https://app.example":
        assert headers[b"access-control-allow-origin"] == origin
    else:
        assert b"access-control-allow-origin" not in headers
    assert metrics.in_flight == 0
    assert 'status="431"' in metrics.text().decode()


async def test_lifespan_and_other_scopes_go_to_the_fixed_app_untouched() -> None:
    seen: list[Scope] = []

    async def fixed(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    async def api(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("the transcoder never sees a lifespan scope")

    scope: Scope = {"type": "lifespan"}
    assert await run(edge(fixed, api), scope) == []
    assert seen == [scope] and "state" not in scope
