"""OpenTelemetry tracing of the gateway: off by default, OTLP when `LEARNFLOW_GATEWAY_TRACING=otlp`.

When on, each HTTP request gets a SERVER span named by its route template
(`GET /v1/courses/{course_id}`, never the raw path), whose W3C `traceparent`/`tracestate` ride
into the gRPC call's metadata. An incoming `traceparent` is followed only from where
`trust_traceparent` allows (by default: trusted proxies, of which there are none by default);
from anyone else it is ignored and the request starts a new trace, so a client can neither
choose trace ids nor force sampling. A client's own `Grpc-Metadata-Traceparent` is never
forwarded (gateway.metadata): what reaches the backend is what the gateway serialized.

When off nothing here is installed and the request path only checks `Tracing | None`.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.datastructures import Headers
from starlette.types import Scope

from gateway.metadata import MetadataPairs, Network, client_address

SCOPE = "gateway"

# W3C trace context only: a client's baggage is not carried anywhere.
PROPAGATOR = TraceContextTextMapPropagator()


@dataclass(frozen=True)
class Tracing:
    """The gateway's tracer and whose `traceparent` it follows."""

    tracer: Tracer
    trust: str = "proxies"
    trusted_proxies: tuple[Network, ...] = ()
    provider: TracerProvider | None = None

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()

    def parent(self, scope: Scope, headers: Headers) -> otel_context.Context:
        """The context a request's span continues: the caller's trace when trusted, else a
        new one (an empty context, never the ambient one)."""
        if self.trust == "none" or "traceparent" not in headers:
            return otel_context.Context()
        if self.trust == "proxies":
            client = scope.get("client")
            # The peer itself must be a trusted proxy: one that sets or vets trace headers.
            if not client or not _within(str(client[0]), self.trusted_proxies):
                return otel_context.Context()
        carrier = {
            key: value
            for key in ("traceparent", "tracestate")
            if (value := headers.get(key)) is not None
        }
        return PROPAGATOR.extract(carrier, context=otel_context.Context())

    def start(self, scope: Scope) -> Span:
        headers = Headers(scope=scope)
        method = scope["method"]
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.path": scope["path"],
            "url.scheme": scope.get("scheme", "http"),
            "network.protocol.version": scope.get("http_version", "1.1"),
        }
        server = scope.get("server")
        if server:
            attributes["server.address"] = str(server[0])
            if server[1] is not None:
                attributes["server.port"] = int(server[1])
        client = scope.get("client")
        if client:
            attributes["network.peer.address"] = str(client[0])
            # The client as the backend is told it: X-Forwarded-For read through trusted proxies.
            address = client_address(
                headers.getlist("x-forwarded-for"), str(client[0]), self.trusted_proxies
            )
            if address is not None:
                attributes["client.address"] = address
        agent = headers.get("user-agent")
        if agent:
            attributes["user_agent.original"] = agent[:256]
        # Named by the method until the route is known (semantic conventions: `{method}`).
        return self.tracer.start_span(
            method,
            context=self.parent(scope, headers),
            kind=SpanKind.SERVER,
            attributes=attributes,
        )


def _within(host: str, networks: tuple[Network, ...]) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in networks)


def finish(span: Span, method: str, route: str | None, status: int) -> None:
    """Name the span by its route template and record the outcome; 5xx is an error (4xx is
    the client's, per the HTTP semantic conventions for server spans)."""
    if route is not None:
        span.update_name(f"{method} {route}")
        span.set_attribute("http.route", route)
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_attribute("error.type", str(status))
        span.set_status(Status(StatusCode.ERROR))


def inject(metadata: MetadataPairs) -> None:
    """Append the current span's `traceparent` (and `tracestate`) to outgoing metadata."""
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier)
    metadata.extend(carrier.items())


def log_ids() -> dict[str, str]:
    """trace_id and span_id of the current span, for a log line (empty when there is none)."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


class TraceIds(logging.Filter):
    """Adds ` trace_id=... span_id=...` (as `record.trace_ids`) to a plain log line written
    inside a span; the access log's JSON lines carry the ids as fields instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = log_ids() if record.name != "gateway.access" else {}
        record.trace_ids = "".join(f" {key}={value}" for key, value in ids.items())
        return True


def configure(
    mode: str,
    *,
    endpoint: str = "",
    ratio: float = 1.0,
    service_name: str = "learnflow-gateway",
    trust: str = "proxies",
    trusted_proxies: tuple[Network, ...] = (),
    exporter: SpanExporter | None = None,
    batch: bool = True,
    environ: Mapping[str, str] | None = None,
) -> Tracing | None:
    """Tracing as configured (None: off). The standard variables win where the SDK reads
    them: OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER over `ratio`,
    OTEL_EXPORTER_OTLP_* when `endpoint` is empty, OTEL_BSP_*."""
    if mode == "off":
        return None
    env = os.environ if environ is None else environ
    attributes = {} if env.get("OTEL_SERVICE_NAME") else {"service.name": service_name}
    kwargs: dict[str, Any] = {"resource": Resource.create(attributes)}
    if not env.get("OTEL_TRACES_SAMPLER"):
        kwargs["sampler"] = ParentBased(root=TraceIdRatioBased(min(max(ratio, 0.0), 1.0)))
    provider = TracerProvider(**kwargs)
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=endpoint or None)
    provider.add_span_processor(
        BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    )
    return Tracing(
        provider.get_tracer(SCOPE),
        trust=trust,
        trusted_proxies=trusted_proxies,
        provider=provider,
    )
