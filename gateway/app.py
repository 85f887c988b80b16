"""Assembly of the ASGI application."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway import docs, errors
from gateway.descriptors import ReflectionError
from gateway.edge import CorsOptions, Edge
from gateway.metadata import REQUEST_ID, client_address
from gateway.metrics import HttpMetrics
from gateway.openapi import OpenApiCache
from gateway.proxy import Dispatcher, Gateway, error_response, headers_too_large
from gateway.settings import Settings, SettingsError
from gateway.static import StaticSite
from gateway.tracing import Tracing

READY_TIMEOUT_S = 2.0
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

    def claims(self, scope: Scope) -> bool:
        """Whether the request may be one of the fixed routes' (or needs Starlette's way to
        tell); False sends it straight to the default."""
        fixed = self._fixed
        if fixed is None or scope["type"] != "http" or scope.get("root_path"):
            return True
        path: str = scope["path"]
        other = path.rstrip("/") if path.endswith("/") else path + "/"
        return path in fixed or other in fixed

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.claims(scope):
            scope.setdefault("router", self)
            await self.default(scope, receive, send)
            return
        await super().app(scope, receive, send)


class GatewayApp(Starlette):
    """Starlette, with `edge` (see gateway.edge) as the one layer between its server-error
    layer and the rest: `edge(fixed)` is given the exception layer over the router, and
    sends the paths that are none of the gateway's own endpoints past both."""

    def __init__(self, *, edge: Callable[[ASGIApp], ASGIApp], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._edge = edge

    def build_middleware_stack(self) -> ASGIApp:
        handlers = {
            key: handler
            for key, handler in self.exception_handlers.items()
            if key not in (500, Exception)
        }
        fixed = ExceptionMiddleware(self.router, handlers=handlers, debug=self.debug)
        return ServerErrorMiddleware(self._edge(fixed), debug=self.debug)


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
    router = FixedPathsRouter(routes=fixed, lifespan=lifespan)
    dispatcher = Dispatcher(gateway, site)
    router.default = dispatcher
    cors = CorsOptions(
        allow_origins=tuple(settings.cors_origins),
        allow_methods=("GET", "POST", "PUT", "PATCH", "DELETE"),
        allow_headers=CORS_ALLOW_HEADERS,
        expose_headers=expose,
        max_age=600,
    )

    def edge(fixed_endpoints: ASGIApp) -> ASGIApp:
        return Edge(
            fixed_endpoints,
            dispatcher,
            router.claims,
            cors=cors,
            refusal=lambda problem: error_response(headers_too_large(problem)),
            max_header_bytes=settings.max_header_bytes,
            max_total_bytes=settings.max_headers_total_bytes,
            metrics=metrics,
            tracing=tracing,
            log_sample=settings.access_log_sample,
            log_slow_ms=settings.access_log_slow_ms,
        )

    app = GatewayApp(
        edge=edge,
        exception_handlers={HTTPException: starlette_error},
        lifespan=lifespan,
    )
    # Everything the fixed endpoints do not claim goes to the transcoder: not a `Mount`,
    # whose pattern does not match paths with an encoded newline (those would get Starlette's
    # plain-text 404 instead of a google.rpc.Status).
    app.router = router
    app.state.gateway = gateway
    app.state.metrics = metrics
    return app
