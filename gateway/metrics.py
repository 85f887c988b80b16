"""Prometheus metrics of the gateway, served at `GET /metrics`.

Requests are labelled by the route *template* that served them (`/v1/things/{thing_id}`,
`/healthz`), never the raw path, so the label set is bounded by the API; anything no route
claimed (404, 405, refusals before routing, CORS preflights) is `unmatched`. HTTP methods
outside the standard set are `other`. One registry per application.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import Response

disable_created_metrics()  # type: ignore[no-untyped-call]

UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class HttpMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "gateway_http_requests",
            "Finished HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "gateway_http_request_duration_seconds",
            "Time to the end of the response by method and route template (streamed "
            "responses included: their whole life).",
            ["method", "route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        # A plain count on the event loop's thread, read at scrape time: a Gauge's inc/dec
        # take a lock each, twice per request.
        self.in_flight = 0
        Gauge(
            "gateway_http_in_flight_requests",
            "HTTP requests being handled now, open streams included.",
            registry=self.registry,
        ).set_function(lambda: float(self.in_flight))
        # The labelled children, looked up once each (`labels()` costs microseconds per
        # request); bounded like the label set itself.
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def finished(self, method: str, route: str | None, status: int, seconds: float) -> None:
        method = method if method in _METHODS else "other"
        route = route or UNMATCHED
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(method=method, route=route, status=str(status)),
                self.duration.labels(method=method, route=route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def text(self) -> bytes:
        return generate_latest(self.registry)

    async def endpoint(self, request: Request) -> Response:
        return Response(self.text(), media_type=CONTENT_TYPE_LATEST)
