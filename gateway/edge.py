"""The one layer every HTTP request passes through before the gateway's endpoints or the
transcoder: request id in and out, the header-size limits, CORS, metrics, the access log
and the request's span.

These were four ASGI middlewares plus Starlette's exception layer and router in front of
every proxied call; each layer is an `await` and most wrap `send` in a closure of their
own. One layer with one `send` wrapper does the same work: about 30 of the 465 us of
gateway CPU a proxied read cost (see bench/README.md, "Read path, stop 14"). What each part
answers is unchanged and tested against the library code it replaces
(tests/gateway/test_gateway_edge.py)."""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.metadata import REQUEST_ID, chosen_request_id, oversized_header, set_raw_header
from gateway.metrics import HttpMetrics
from gateway.tracing import Tracing, finish, log_ids

access_log = logging.getLogger("gateway.access")

# Probes and scrapes, every few seconds from every prober: no traces of their own.
UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

_REQUEST_ID_KEY = REQUEST_ID.encode("latin-1")


@dataclass(frozen=True)
class CorsOptions:
    """Starlette's CORSMiddleware arguments, for each app the edge puts it in front of."""

    allow_origins: tuple[str, ...]
    allow_methods: tuple[str, ...]
    allow_headers: tuple[str, ...]
    expose_headers: tuple[str, ...]
    max_age: int

    def around(self, app: ASGIApp) -> CORSMiddleware:
        return CORSMiddleware(
            app,
            allow_origins=list(self.allow_origins),
            allow_methods=list(self.allow_methods),
            allow_headers=list(self.allow_headers),
            expose_headers=list(self.expose_headers),
            max_age=self.max_age,
        )


def decorate_start(message: Message, request_id: bytes, vary_origin: bool) -> None:
    """The response start's headers with `X-Request-Id: request_id` and, when `vary_origin`,
    `Origin` added to what it varies by: what Starlette's CORS middleware does for a request
    without `Origin`, then the request-id header, each as `MutableHeaders` assignment."""
    headers = list(message.get("headers", ()))
    if vary_origin:
        varies = [value for key, value in headers if key == b"vary"]
        set_raw_header(headers, b"vary", b", ".join([*varies, b"Origin"]))
    set_raw_header(headers, _REQUEST_ID_KEY, request_id)
    message["headers"] = headers


def request_id_of(raw: list[tuple[bytes, bytes]]) -> str:
    """`gateway.metadata.request_id_from`, from the raw pairs (ASGI header names are
    lower-case): the first X-Request-Id when it is a sane token, else a fresh one."""
    given = next((value for key, value in raw if key == _REQUEST_ID_KEY), None)
    return chosen_request_id(None if given is None else given.decode("latin-1"))


class Edge:
    """Request id in and out, header-size limits (431), CORS, a structured access-log line,
    its metrics, and its span while tracing is on; then `api` (the transcoder) for a path
    `fixed_claims` says is none of the gateway's own endpoints, else `fixed` (Starlette's
    exception layer and router).

    The access line is written for every failed (4xx/5xx) or slow request and for a
    `log_sample` share of the others: at production rates a JSON line per fast success costs
    more than the request's own routing (metrics still count every request).

    CORS is Starlette's middleware for a request with an `Origin`. A request without one (the
    web app's own, and every non-browser client) is answered as Starlette's would, `Vary:
    Origin` added, in the edge's own `send` wrapper instead of the middleware's."""

    def __init__(
        self,
        fixed: ASGIApp,
        api: ASGIApp,
        fixed_claims: Callable[[Scope], bool],
        *,
        cors: CorsOptions,
        refusal: Callable[[str], ASGIApp],
        max_header_bytes: int,
        max_total_bytes: int,
        metrics: HttpMetrics | None = None,
        tracing: Tracing | None = None,
        log_sample: float = 1.0,
        log_slow_ms: float = 250.0,
    ) -> None:
        self.fixed = fixed
        self.api = api
        self.fixed_claims = fixed_claims
        self.cors = cors
        self._fixed_cors = cors.around(fixed)
        self._api_cors = cors.around(api)
        self.refusal = refusal
        self.max_header_bytes = max_header_bytes
        self.max_total_bytes = max_total_bytes
        self.metrics = metrics
        self.tracing = tracing
        self.log_sample = log_sample
        self.log_slow_s = log_slow_ms / 1000

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.fixed(scope, receive, send)  # lifespan (and websockets: refused there)
            return
        if self.tracing is None or scope["path"] in UNTRACED_PATHS:
            await self._handle(scope, receive, send, None)
            return
        span = self.tracing.start(scope)
        # Current for the whole request (the gRPC call's metadata, the access-log line); ended
        # by `_handle` once the status and route are known.
        with trace.use_span(span, end_on_exit=True, record_exception=False):
            await self._handle(scope, receive, send, span)

    def _target(self, scope: Scope, with_origin: bool) -> ASGIApp:
        problem = oversized_header(scope["headers"], self.max_header_bytes, self.max_total_bytes)
        if problem is not None:
            refusal = self.refusal(problem)
            return self.cors.around(refusal) if with_origin else refusal
        if self.fixed_claims(scope):
            return self._fixed_cors if with_origin else self.fixed
        return self._api_cors if with_origin else self.api

    async def _handle(self, scope: Scope, receive: Receive, send: Send, span: Span | None) -> None:
        raw: list[tuple[bytes, bytes]] = scope["headers"]
        request_id = request_id_of(raw)
        request_id_bytes = request_id.encode("latin-1")
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        with_origin = any(key == b"origin" for key, _ in raw)
        started = time.perf_counter()
        status = 500

        async def send_with_context(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                decorate_start(message, request_id_bytes, not with_origin)
            await send(message)

        metrics = self.metrics
        if metrics is not None:
            metrics.in_flight += 1
        try:
            await self._target(scope, with_origin)(scope, receive, send_with_context)
        finally:
            seconds = time.perf_counter() - started
            route = route_template(scope)
            if metrics is not None:
                metrics.in_flight -= 1
                metrics.finished(scope["method"], route, status, seconds)
            if span is not None:
                finish(span, scope["method"], route, status)
                span.set_attribute("learnflow.request_id", request_id)
            if self._wants_line(status, seconds):
                line: dict[str, Any] = {
                    "event": "http_request",
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "grpc_method": state.get("grpc_method"),
                    "duration_ms": round(seconds * 1000, 2),
                    "request_id": request_id,
                }
                if span is not None:
                    line.update(log_ids())
                access_log.info(json.dumps(line))

    def _wants_line(self, status: int, seconds: float) -> bool:
        if status >= 400 or seconds >= self.log_slow_s:
            return True
        return self.log_sample > 0 and random.random() < self.log_sample


def route_template(scope: Scope) -> str | None:
    """The template of the route that served the request: a transcoded API route (set by the
    dispatcher) or one of the gateway's own endpoints; None when none matched."""
    template = scope.get("state", {}).get("route")
    if isinstance(template, str):
        return template
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else None
