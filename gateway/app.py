"""Assembly of the ASGI application."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry import trace
from opentelemetry.trace import Span
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import docs, errors
from gateway.descriptors import ReflectionError
from gateway.metadata import REQUEST_ID, client_address, oversized_header, request_id_from
from gateway.metrics import HttpMetrics
from gateway.openapi import OpenApiCache
from gateway.proxy import Dispatcher, Gateway, error_response, headers_too_large
from gateway.settings import Settings, SettingsError
from gateway.static import StaticSite
from gateway.tracing import Tracing, finish, log_ids

access_log = logging.getLogger("gateway.access")

READY_TIMEOUT_S = 2.0
# Probes and scrapes, every few seconds from every prober: no traces of their own.
UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
CORS_ALLOW_HEADERS = (
    "Authorization",
    "Content-Type",
    "X-Request-Id",
    "X-Consistency-Token",
    "Grpc-Timeout",
    "If-None-Match",
    "Last-Event-ID",
    "Idempotency-Key",
)
CORS_EXPOSE_HEADERS = (
    "ETag",
    "X-Request-Id",
    "X-Consistency-Token",
    "Retry-After",
    "WWW-Authenticate",
    "Grpc-Metadata-X-Consistency-Token",
    "Deprecation",
)


class FixedPathsRouter(Router):
    """Starlette's router, which tries every route's pattern (and, for a miss, every route
    again with the other trailing slash) before its default. The fixed endpoints here are
    exact paths, so a path that is none of them, nor one of them give or take the trailing
    slash, goes straight to the default (the transcoder): 5 % of the gateway's time per API
    call otherwise. Anything else takes Starlette's way, with its 405s and redirects."""

    def __init__(self, routes: Sequence[BaseRoute], **kwargs: Any) -> None:
        super().__init__(routes=routes, **kwargs)
        plain = all(isinstance(route, Route) and not route.param_convertors for route in routes)
        self._fixed = (
            frozenset(route.path for route in routes if isinstance(route, Route)) if plain else None
        )

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        fixed = self._fixed
        if fixed is not None and scope["type"] == "http" and not scope.get("root_path"):
            path: str = scope["path"]
            other = path.rstrip("/") if path.endswith("/") else path + "/"
            if path not in fixed and other not in fixed:
                scope.setdefault("router", self)
                await self.default(scope, receive, send)
                return
        await super().app(scope, receive, send)


def set_header(message: Message, name: bytes, value: bytes) -> None:
    """What `MutableHeaders(scope=message)[name] = value` does, without building the wrapper
    (on every response): the first header of that lower-case `name` takes the value, later
    ones are dropped; appended when there is none."""
    headers = message["headers"] = list(message.get("headers", ()))
    found = [index for index, (key, _) in enumerate(headers) if key == name]
    for index in reversed(found[1:]):
        del headers[index]
    if found:
        headers[found[0]] = (name, value)
    else:
        headers.append((name, value))


class SameOriginFastCORS(CORSMiddleware):
    """Starlette's CORS middleware, answering a request without an `Origin` header (the web
    app's own, and every non-browser client) as it does, `Vary: Origin` added to what the
    response varies by, without its per-response header wrappers (8 % of a proxied call's
    time in the gateway). Requests with an `Origin` take Starlette's own way."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or any(key == b"origin" for key, _ in scope["headers"]):
            await super().__call__(scope, receive, send)
            return

        async def send_varying(message: Message) -> None:
            if message["type"] == "http.response.start":
                varies = [
                    value.decode("latin-1")
                    for key, value in message.get("headers", ())
                    if key == b"vary"
                ]
                set_header(message, b"vary", ", ".join([*varies, "Origin"]).encode("latin-1"))
            await send(message)

        await self.app(scope, receive, send_varying)


class RequestContextMiddleware:
    """Request id in and out, a structured access-log line, its metrics, and its span while
    tracing is on.

    The line is written for every failed (4xx/5xx) or slow request and for a `log_sample`
    share of the others: at production rates a JSON line per fast success costs more than
    the request's own routing (metrics still count every request)."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: HttpMetrics | None = None,
        tracing: Tracing | None = None,
        *,
        log_sample: float = 1.0,
        log_slow_ms: float = 250.0,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.tracing = tracing
        self.log_sample = log_sample
        self.log_slow_s = log_slow_ms / 1000

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.tracing is None or scope["path"] in UNTRACED_PATHS:
            await self._handle(scope, receive, send, None)
            return
        span = self.tracing.start(scope)
        # Current for the whole request (the gRPC call's metadata, the access-log line); ended
        # by `_handle` once the status and route are known.
        with trace.use_span(span, end_on_exit=True, record_exception=False):
            await self._handle(scope, receive, send, span)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, span: Span | None) -> None:
        request_id = request_id_from(Headers(scope=scope))
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                set_header(message, b"x-request-id", request_id.encode("latin-1"))
            await send(message)

        if self.metrics is not None:
            self.metrics.in_flight += 1
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = _route_template(scope)
            if self.metrics is not None:
                self.metrics.in_flight -= 1
                self.metrics.finished(scope["method"], route, status, seconds)
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


def _route_template(scope: Scope) -> str | None:
    """The template of the route that served the request: a transcoded API route (set by the
    dispatcher) or one of the gateway's own endpoints; None when none matched."""
    template = scope.get("state", {}).get("route")
    if isinstance(template, str):
        return template
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else None


class HeaderLimitMiddleware:
    """431 for a request whose headers (one, or all together) exceed the configured sizes."""

    def __init__(self, app: ASGIApp, max_header_bytes: int, max_total_bytes: int) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes
        self.max_total_bytes = max_total_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problem = oversized_header(
                scope["headers"], self.max_header_bytes, self.max_total_bytes
            )
            if problem is not None:
                await error_response(headers_too_large(problem))(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _bearer_matches(request: Request, secret: str) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode(), secret.encode()
    )


_HTTP_CODES = {
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


async def starlette_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (e.g. a wrong method on /healthz) in the same error model."""
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, grpc.StatusCode.INVALID_ARGUMENT)
    if exc.status_code >= 500:
        code = grpc.StatusCode.INTERNAL
    response = error_response(errors.simple_error(code, exc.detail, status=exc.status_code))
    for key, value in (exc.headers or {}).items():
        response.headers[key] = value
    return response


async def _service_health(
    stub: Any, service: str, metadata: list[tuple[str, str]]
) -> dict[str, Any]:
    """One named health service's status, with the details its trailers carry."""
    call = stub.Check(
        health_pb2.HealthCheckRequest(service=service),
        timeout=READY_TIMEOUT_S,
        metadata=metadata,
    )
    try:
        reply = await call
    except grpc.aio.AioRpcError as exc:
        return {"status": exc.code().name}
    trailers = await call.trailing_metadata()
    # The service's own details: not transport keys, nor the request id echoed back.
    details = {
        str(key): value
        for key, value in (trailers or ())
        if isinstance(value, str) and not str(key).startswith("grpc-") and key != REQUEST_ID
    }
    report: dict[str, Any] = {
        "status": health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    }
    if details:
        report["details"] = details
    return report


def create_app(settings: Settings | None = None, tracing: Tracing | None = None) -> Starlette:
    """The gateway's ASGI app; `tracing` (see gateway.tracing.configure) turns spans on."""
    settings = settings or Settings.from_env()
    gateway = Gateway(settings, tracing)
    openapi = OpenApiCache(gateway, title=settings.api_title)
    site = None
    if settings.static_dir:
        try:
            site = StaticSite(Path(settings.static_dir), settings.content_security_policy)
        except ValueError as exc:
            raise SettingsError(f"LEARNFLOW_GATEWAY_STATIC_DIR: {exc}") from None
    metrics = HttpMetrics()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        if gateway.registry is None:
            return JSONResponse({"status": "NOT_LOADED"}, status_code=503)
        stub: Any = health_pb2_grpc.HealthStub(gateway.channel)
        # The backend rate-limits health checks per client: count them against the caller's
        # address, not the gateway's (or anyone could spend the gateway's budget).
        metadata = [("x-request-id", request.state.request_id)]
        client = client_address(
            request.headers.getlist("x-forwarded-for"),
            request.client.host if request.client else None,
            settings.trusted_proxies,
        )
        if client is not None:
            metadata.append(("x-forwarded-for", client))
        try:
            reply = await stub.Check(
                health_pb2.HealthCheckRequest(service=""),
                timeout=READY_TIMEOUT_S,
                metadata=metadata,
            )
        except grpc.aio.AioRpcError as exc:
            return JSONResponse({"status": exc.code().name}, status_code=503)
        name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        if name != "SERVING":
            return JSONResponse({"status": name}, status_code=503)
        services = {
            service: await _service_health(stub, service, metadata)
            for service in settings.ready_services
        }
        degraded = any(report["status"] != "SERVING" for report in services.values())
        body: dict[str, Any] = {"status": "DEGRADED" if degraded else "SERVING"}
        if services:
            body["services"] = services
        return JSONResponse(body)

    async def stream_ticket(request: Request) -> Response:
        # A ticket for an EventSource (gateway/tickets.py): it stands for this bearer token.
        authorization = request.headers.get("authorization", "")
        if not authorization.lower().startswith("bearer ") or len(authorization) > 4096:
            return error_response(
                errors.simple_error(
                    grpc.StatusCode.UNAUTHENTICATED, "a stream ticket needs a bearer token"
                )
            )
        ticket = gateway.tickets.issue(authorization)
        return JSONResponse(
            {"ticket": ticket, "expiresIn": int(gateway.tickets.ttl_s)},
            headers={"Cache-Control": "no-store"},
        )

    async def reload(request: Request) -> Response:
        # Reloading only re-reads the backend, but it is an admin action: it exists only with a
        # configured secret, sent as a bearer token.
        if not settings.reload_token:
            return error_response(
                errors.simple_error(grpc.StatusCode.NOT_FOUND, "no route for POST /-/reload")
            )
        if not _bearer_matches(request, settings.reload_token):
            return error_response(
                errors.simple_error(
                    grpc.StatusCode.UNAUTHENTICATED, "reload requires the configured bearer token"
                )
            )
        try:
            changed = await gateway.loader.reload()
        except (grpc.aio.AioRpcError, ReflectionError) as exc:
            return error_response(
                errors.simple_error(grpc.StatusCode.UNAVAILABLE, f"reload failed: {exc}")
            )
        schema = gateway.loader.schema
        assert schema is not None
        return JSONResponse(
            {
                "changed": changed,
                "fingerprint": schema.fingerprint,
                "services": [s.full_name for s in schema.services],
            }
        )

    async def openapi_json(request: Request) -> Response:
        document = openapi.document()
        if document is None:
            return error_response(
                errors.simple_error(
                    grpc.StatusCode.UNAVAILABLE, "the backend's API description is not loaded yet"
                )
            )
        return JSONResponse(document)

    async def index(request: Request) -> Response:
        if site is not None and (page := await site.serve(request)) is not None:
            return page
        # No web app configured (or its build is gone): where to start reading.
        return JSONResponse(
            {
                "name": settings.api_title,
                "docs": docs.DOCS_PATH,
                "openapi": docs.OPENAPI_PATH,
                "health": "/healthz",
                "ready": "/readyz",
            }
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()
            if tracing is not None:
                # Export what is buffered (a thread flush, bounded by the exporter's timeout).
                await asyncio.to_thread(tracing.shutdown)

    expose = CORS_EXPOSE_HEADERS + tuple(
        "Grpc-Metadata-" + key for key in settings.cors_expose_metadata
    )
    fixed: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics.endpoint, methods=["GET"]),
        Route("/", index, methods=["GET"]),
        Route(docs.OPENAPI_PATH, openapi_json, methods=["GET"]),
        *docs.routes(settings.api_title),
        Route("/-/reload", reload, methods=["POST"]),
        Route("/-/stream-tickets", stream_ticket, methods=["POST"]),
    ]
    app = Starlette(
        exception_handlers={HTTPException: starlette_error},
        middleware=[
            Middleware(
                RequestContextMiddleware,
                metrics=metrics,
                tracing=tracing,
                log_sample=settings.access_log_sample,
                log_slow_ms=settings.access_log_slow_ms,
            ),
            Middleware(
                SameOriginFastCORS,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                allow_headers=list(CORS_ALLOW_HEADERS),
                expose_headers=list(expose),
                max_age=600,
            ),
            Middleware(
                HeaderLimitMiddleware,
                max_header_bytes=settings.max_header_bytes,
                max_total_bytes=settings.max_headers_total_bytes,
            ),
        ],
        lifespan=lifespan,
    )
    # Everything the fixed endpoints do not claim goes to the transcoder: not a `Mount`,
    # whose pattern does not match paths with an encoded newline (those would get Starlette's
    # plain-text 404 instead of a google.rpc.Status).
    app.router = FixedPathsRouter(routes=fixed, lifespan=lifespan)
    app.router.default = Dispatcher(gateway, site)
    app.state.gateway = gateway
    app.state.metrics = metrics
    return app
