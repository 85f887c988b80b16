"""OpenTelemetry tracing of the server: off by default, OTLP when `LEARNFLOW_TRACING=otlp`.

While it is off nothing here is installed: `tracer()` is None, callers skip their span code
behind that one check, no listener is registered with SQLAlchemy or PyMongo, and no
`traceparent` is read, written or stored.

When on, the spans are written by hand (no instrumentation package): the RPC span in the
interceptor (`learnflow.security.interceptor`), one span per PostgreSQL statement (SQLAlchemy
cursor events) and per MongoDB command (a PyMongo command listener), and one span per
projector batch, linked to the spans of the commands that wrote its events (their
`traceparent` is stored with each event). Database spans are made only inside a traced
operation: the health watcher's pings and the projector's polling make no root traces.

Statements are recorded without their parameters and MongoDB commands by name and collection
only: filters and documents may hold personal data.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes
from pymongo import monitoring
from sqlalchemy import event
from sqlalchemy.engine import Engine

from learnflow.settings import Settings

SCOPE = "learnflow"

# W3C trace context only: no baggage (a caller's baggage would ride into every span and log).
PROPAGATOR = TraceContextTextMapPropagator()

_provider: TracerProvider | None = None
_tracer: Tracer | None = None


def tracer() -> Tracer | None:
    """The server's tracer while tracing is on, else None (the one check on hot paths)."""
    return _tracer


def install(provider: TracerProvider) -> Tracer:
    """Trace with `provider` from now on (`configure` does this; tests pass their own)."""
    global _provider, _tracer
    _provider = provider
    _tracer = provider.get_tracer(SCOPE)
    return _tracer


def uninstall() -> None:
    """Tracing off again (spans already started still end). Does not shut the provider down."""
    global _provider, _tracer
    _provider = None
    _tracer = None


def shutdown() -> None:
    """Export what is buffered and stop (at process exit)."""
    provider = _provider
    uninstall()
    if provider is not None:
        provider.shutdown()


class LinkedSampler(Sampler):
    """Samples a root span that links to a sampled span (a projector batch whose events were
    written by a sampled command), else decides by trace id ratio: a command's trace keeps its
    batch whatever the ratio."""

    def __init__(self, ratio: float) -> None:
        self._ratio = TraceIdRatioBased(ratio)

    def should_sample(
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        if links and any(link.context.trace_flags.sampled for link in links):
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)
        return self._ratio.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"LinkedSampler({self._ratio.get_description()})"


def sampler(ratio: float) -> Sampler:
    """A caller's decision (the sampled flag of its `traceparent`) is followed; roots are
    sampled at `ratio`, or when they link to a sampled span."""
    return ParentBased(root=LinkedSampler(min(max(ratio, 0.0), 1.0)))


def make_provider(
    service_name: str,
    ratio: float,
    exporter: SpanExporter,
    *,
    batch: bool = True,
    environ: Mapping[str, str] | None = None,
) -> TracerProvider:
    """A provider exporting to `exporter`. The standard variables win where the SDK reads
    them: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (resource), OTEL_TRACES_SAMPLER (and
    its _ARG) over `ratio`, OTEL_BSP_* (batching)."""
    env = os.environ if environ is None else environ
    attributes = {} if env.get("OTEL_SERVICE_NAME") else {"service.name": service_name}
    kwargs: dict[str, Any] = {"resource": Resource.create(attributes)}
    if not env.get("OTEL_TRACES_SAMPLER"):
        kwargs["sampler"] = sampler(ratio)
    provider = TracerProvider(**kwargs)
    processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    return provider


def otlp_exporter(endpoint: str) -> SpanExporter:
    """OTLP over gRPC (grpcio is already a dependency: no HTTP client added). An empty
    endpoint leaves it to OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, else localhost:4317."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint or None)


def configure(settings: Settings, exporter: SpanExporter | None = None) -> Tracer | None:
    """Install tracing as `settings` say (None: off). Call before `build`: the database
    listeners are registered when the engine and the client are made."""
    if settings.tracing == "off":
        uninstall()
        return None
    provider = make_provider(
        settings.trace_service_name,
        settings.trace_sample_ratio,
        exporter or otlp_exporter(settings.otlp_endpoint),
    )
    # Also the global provider: any library instrumented with the OpenTelemetry API joins in.
    trace.set_tracer_provider(provider)
    return install(provider)


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the current span when it is sampled (stored with an event
    so that the projector's batch can link to it), else None."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid or not context.trace_flags.sampled:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def link_to(traceparent: str | None) -> Link | None:
    """A link to the span a stored `traceparent` names (None when it names none)."""
    if not traceparent:
        return None
    context = trace.get_current_span(PROPAGATOR.extract({"traceparent": traceparent}))
    span_context = context.get_span_context()
    return Link(span_context) if span_context.is_valid else None


def _in_trace() -> bool:
    return trace.get_current_span().is_recording()


# PostgreSQL: one CLIENT span per statement executed through SQLAlchemy.

_SPAN_KEY = "learnflow_span"
_POSTGRES = "postgresql"


def _statement_name(statement: str) -> str:
    first = statement.lstrip().split(None, 1)
    return first[0].upper() if first else "SQL"


def instrument_engine(engine: Engine) -> None:
    """Spans for the statements of `engine` (an AsyncEngine's `sync_engine`) while tracing
    is on. The statement text is recorded as SQLAlchemy sends it: with placeholders (%(name)s),
    never the values."""
    tracer_ = _tracer
    if tracer_ is None:
        return
    url = engine.url

    def before(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if context is None or not _in_trace():
            return
        operation = _statement_name(statement)
        span = tracer_.start_span(
            f"{operation} {url.database}",
            kind=SpanKind.CLIENT,
            attributes={
                "db.system.name": _POSTGRES,
                "db.namespace": url.database or "",
                "db.operation.name": operation,
                "db.query.text": statement,
                "server.address": url.host or "",
                "server.port": url.port or 5432,
            },
        )
        setattr(context, _SPAN_KEY, span)

    def after(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        span = context.__dict__.pop(_SPAN_KEY, None) if context is not None else None
        if span is not None:
            span.end()

    def failed(exception_context: Any) -> None:
        context = exception_context.execution_context
        span = context.__dict__.pop(_SPAN_KEY, None) if context is not None else None
        if span is not None:
            error = exception_context.original_exception
            span.set_attribute("error.type", type(error).__qualname__)
            span.set_status(Status(StatusCode.ERROR, type(error).__qualname__))
            span.end()

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    event.listen(engine, "handle_error", failed)


# MongoDB: one CLIENT span per command, from PyMongo's command monitoring.


_MAX_OPEN = 10_000


class MongoSpans(monitoring.CommandListener):
    """Spans of MongoDB commands: name, database and collection; never the command's body
    (filters, documents and updates may hold personal data)."""

    def __init__(self, tracer_: Tracer) -> None:
        self._tracer = tracer_
        self._open: dict[tuple[int, Any], Any] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        # Called in the task that runs the command, so the current span is its parent.
        if not _in_trace():
            return
        name = event.command_name
        target = event.command.get(name)
        collection = target if isinstance(target, str) else event.command.get("collection")
        attributes: dict[str, Any] = {
            "db.system.name": "mongodb",
            "db.namespace": event.database_name,
            "db.operation.name": name,
        }
        if isinstance(collection, str):
            attributes["db.collection.name"] = collection
        host, port = event.connection_id
        attributes["server.address"] = str(host)
        if isinstance(port, int):
            attributes["server.port"] = port
        span = self._tracer.start_span(
            f"{name} {collection}" if isinstance(collection, str) else name,
            kind=SpanKind.CLIENT,
            attributes=attributes,
        )
        if len(self._open) >= _MAX_OPEN:
            # A command whose outcome was never published (its task cancelled mid-way): drop
            # the unfinished spans rather than grow without bound.
            self._open.clear()
        self._open[(event.request_id, event.connection_id)] = span

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        span = self._open.pop((event.request_id, event.connection_id), None)
        if span is not None:
            span.end()

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        span = self._open.pop((event.request_id, event.connection_id), None)
        if span is not None:
            code = event.failure.get("codeName") or event.failure.get("code") or "error"
            span.set_attribute("db.response.status_code", str(code))
            span.set_status(Status(StatusCode.ERROR, str(code)))
            span.end()


def mongo_listeners() -> list[monitoring.CommandListener]:
    """The listeners a new MongoDB client registers: none while tracing is off."""
    return [MongoSpans(_tracer)] if _tracer is not None else []
