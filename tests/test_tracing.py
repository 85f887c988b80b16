"""OpenTelemetry tracing end to end: real HTTP through the gateway (uvicorn on a loopback port)
into a real gRPC server on the session's PostgreSQL and MongoDB, spans caught by the SDK's
in-memory exporter (synchronously: SimpleSpanProcessor)."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass

import grpc
import httpx
import psycopg
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from gateway import tracing as gateway_tracing
from gateway.app import create_app
from gateway.settings import Settings as GatewaySettings
from learnflow import tracing
from learnflow.logs import JsonFormatter
from learnflow.server import Backend, build
from learnflow.settings import Settings
from learnflow.v1 import courses_pb2, courses_pb2_grpc
from tests.gateway_support import RunningServer, running_app
from tests.support import Caller

GET_COURSE = "learnflow.v1.CatalogService/GetCourse"
CREATE_COURSE = "learnflow.v1.CourseService/CreateCourse"


@dataclass
class Traced:
    backend: Backend
    channel: grpc.aio.Channel
    gateway: RunningServer  # tracing on
    plain_gateway: RunningServer  # tracing off
    exporter: InMemorySpanExporter
    provider: TracerProvider
    instructor: Caller


def _gateway_settings(backend: Backend) -> GatewaySettings:
    return dataclasses.replace(
        GatewaySettings.from_env({}),
        grpc_target=f"127.0.0.1:{backend.port}",
        cors_origins=(),
        reload_interval_s=0,
        access_log_sample=1.0,
    )


@pytest.fixture(scope="module")
async def traced(settings: Settings, postgres_url: str) -> AsyncIterator[Traced]:
    """A server built while tracing is on (so its database clients are instrumented) and two
    gateways in front of it, one tracing and one not. Tracing is left on between tests;
    a test that wants it off turns it off and back on."""
    exporter = InMemorySpanExporter()
    provider = tracing.make_provider("learnflow-server", 1.0, exporter, batch=False, environ={})
    tracing.install(provider)
    backend: Backend | None = None
    try:
        # Every RPC gets its access-log line (the log test reads them).
        backend = await build(dataclasses.replace(settings, access_log_sample=1.0))
        on = gateway_tracing.configure("otlp", exporter=exporter, batch=False, environ={})
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{backend.port}") as channel,
            running_app(create_app(_gateway_settings(backend), on)) as gateway,
            running_app(create_app(_gateway_settings(backend))) as plain,
        ):
            for running in (gateway, plain):
                await running.app.state.gateway.wait_loaded(within=20)
            instructor = await Caller.with_role(channel, postgres_url, "instructor")
            yield Traced(backend, channel, gateway, plain, exporter, provider, instructor)
    finally:
        tracing.uninstall()
        if backend is not None:
            await backend.close(grace_s=1)
        provider.shutdown()


@pytest.fixture
def spans(traced: Traced) -> Iterator[InMemorySpanExporter]:
    traced.exporter.clear()
    yield traced.exporter


def _named(spans: Sequence[ReadableSpan], name: str) -> ReadableSpan:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, f"{name}: {[s.name for s in spans]}"
    return found[0]


def _children(spans: Sequence[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    return [
        span
        for span in spans
        if span.parent is not None and span.parent.span_id == parent.context.span_id
    ]


async def _create_course(traced: Traced, http: httpx.AsyncClient, title: str) -> httpx.Response:
    created = await http.post(
        "/v1/courses",
        json={"course": {"title": title}},
        headers={"Authorization": f"Bearer {traced.instructor.access_token}"},
    )
    assert created.status_code == 200, created.text
    return created


async def test_a_request_through_the_gateway_is_one_trace_down_to_the_databases(
    traced: Traced, spans: InMemorySpanExporter
) -> None:
    title = f"Traced {uuid.uuid4().hex}"
    auth = {"Authorization": f"Bearer {traced.instructor.access_token}"}
    async with httpx.AsyncClient(base_url=traced.gateway.url, timeout=30) as http:
        created = await _create_course(traced, http, title)
        course_id = created.json()["course"]["id"]
        fetched = await http.get(
            f"/v1/courses/{course_id}",
            headers={**auth, "X-Consistency-Token": created.json()["consistencyToken"]},
        )
    assert fetched.status_code == 200, fetched.text
    finished = spans.get_finished_spans()

    # The query: gateway span (route template, never the raw path) -> RPC span -> MongoDB.
    http_span = _named(finished, "GET /v1/courses/{course_id}")
    assert http_span.kind is SpanKind.SERVER
    assert http_span.parent is None  # no trusted caller: the trace starts here
    assert http_span.instrumentation_scope is not None
    assert http_span.instrumentation_scope.name == "gateway"
    attributes = dict(http_span.attributes or {})
    assert attributes["http.request.method"] == "GET"
    assert attributes["http.route"] == "/v1/courses/{course_id}"
    assert attributes["http.response.status_code"] == 200
    rpc = _named(finished, GET_COURSE)
    assert rpc.kind is SpanKind.SERVER
    assert rpc.parent is not None and rpc.parent.is_remote  # came in as metadata
    assert rpc.parent.span_id == http_span.context.span_id
    assert rpc.context.trace_id == http_span.context.trace_id
    rpc_attributes = dict(rpc.attributes or {})
    assert rpc_attributes["rpc.system"] == "grpc"
    assert rpc_attributes["rpc.service"] == "learnflow.v1.CatalogService"
    assert rpc_attributes["rpc.method"] == "GetCourse"
    assert rpc_attributes["rpc.grpc.status_code"] == 0
    mongo = [s for s in _children(finished, rpc) if s.attributes["db.system.name"] == "mongodb"]  # type: ignore[index]
    assert mongo, [s.name for s in finished]
    for span in mongo:
        assert span.kind is SpanKind.CLIENT
        assert span.context.trace_id == http_span.context.trace_id
    # One tree: every span of the request's trace hangs from the gateway's.
    in_trace = [s for s in finished if s.context.trace_id == http_span.context.trace_id]
    ids = {s.context.span_id for s in in_trace}
    assert all(
        s.parent is not None and s.parent.span_id in ids for s in in_trace if s is not http_span
    )
    reads = [s for s in mongo if (s.attributes or {}).get("db.operation.name") == "find"]
    assert reads and all("db.collection.name" in (s.attributes or {}) for s in reads)
    for span in mongo:  # a command's name and collection only: no filter, no document
        assert course_id not in json.dumps(dict(span.attributes or {}))

    # The command: gateway span -> RPC span -> PostgreSQL statements, parameters left out.
    post = _named(finished, "POST /v1/courses")
    create = _named(finished, CREATE_COURSE)
    assert create.parent is not None and create.parent.span_id == post.context.span_id
    assert create.context.trace_id == post.context.trace_id != http_span.context.trace_id
    statements = [
        s
        for s in _children(finished, create)
        if s.attributes["db.system.name"] == "postgresql"  # type: ignore[index]
    ]
    inserts = [s for s in statements if (s.attributes or {})["db.operation.name"] == "INSERT"]
    assert any("INSERT INTO courses" in str((s.attributes or {})["db.query.text"]) for s in inserts)
    assert all(s.context.trace_id == post.context.trace_id for s in statements)
    for span in statements:
        assert title not in str((span.attributes or {})["db.query.text"])


async def test_a_projected_event_links_its_batch_span_to_the_command(
    traced: Traced, spans: InMemorySpanExporter, postgres_url: str
) -> None:
    async with httpx.AsyncClient(base_url=traced.gateway.url, timeout=30) as http:
        created = await _create_course(traced, http, f"Linked {uuid.uuid4().hex[:8]}")
    command = _named(spans.get_finished_spans(), CREATE_COURSE)
    # The stored traceparent names the command's RPC span, on each of the transaction's
    # events (the audit.recorded one is appended by the same statement as course.created).
    url = postgres_url.replace("postgresql+psycopg://", "postgresql://", 1)
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute(
            "SELECT event_type, trace_parent FROM events WHERE txid ="
            " (SELECT txid FROM events WHERE aggregate_id = %s)",
            (created.json()["course"]["id"],),
        )
        rows = await cur.fetchall()
    assert sorted(row[0] for row in rows) == ["audit.recorded", "course.created"]
    stored = {row[1] for row in rows}
    ids = f"{command.context.trace_id:032x}-{command.context.span_id:016x}"
    assert stored == {f"00-{ids}-{command.context.trace_flags:02x}"}
    assert command.context.trace_flags.sampled

    async def batch_linked() -> ReadableSpan:
        while True:
            for span in spans.get_finished_spans():
                if span.name == "project events" and any(
                    link.context.span_id == command.context.span_id
                    and link.context.trace_id == command.context.trace_id
                    for link in span.links
                ):
                    return span
            await asyncio.sleep(0.05)

    batch = await asyncio.wait_for(batch_linked(), timeout=15)
    assert batch.kind is SpanKind.CONSUMER
    assert batch.parent is None  # a trace of its own, linked, not a child
    assert int((batch.attributes or {})["messaging.batch.message_count"]) >= 1  # type: ignore[arg-type]


async def test_log_lines_carry_the_trace_id(traced: Traced, spans: InMemorySpanExporter) -> None:
    # Formatted as they are emitted, i.e. while the span is current (as on stderr).
    server_lines = io.StringIO()
    server_handler = logging.StreamHandler(server_lines)
    server_handler.setFormatter(JsonFormatter())
    gateway_lines = io.StringIO()
    gateway_handler = logging.StreamHandler(gateway_lines)
    rpc_log, access_log = logging.getLogger("learnflow.rpc"), logging.getLogger("gateway.access")
    levels = rpc_log.level, access_log.level
    rpc_log.addHandler(server_handler)
    access_log.addHandler(gateway_handler)
    rpc_log.setLevel(logging.INFO)
    access_log.setLevel(logging.INFO)
    try:
        async with httpx.AsyncClient(base_url=traced.gateway.url, timeout=30) as http:
            listed = await http.get("/v1/courses", params={"pageSize": 1})
        assert listed.status_code == 200, listed.text
    finally:
        rpc_log.removeHandler(server_handler)
        access_log.removeHandler(gateway_handler)
        rpc_log.setLevel(levels[0])
        access_log.setLevel(levels[1])
    http_span = _named(spans.get_finished_spans(), "GET /v1/courses")
    rpc = _named(spans.get_finished_spans(), "learnflow.v1.CatalogService/ListCourses")
    trace_id = f"{http_span.context.trace_id:032x}"
    server = [json.loads(line) for line in server_lines.getvalue().splitlines()]
    line = next(entry for entry in server if entry["rpc"] == "/" + rpc.name)
    assert line["trace_id"] == trace_id
    assert line["span_id"] == f"{rpc.context.span_id:016x}"
    access = [json.loads(line) for line in gateway_lines.getvalue().splitlines()]
    line = next(entry for entry in access if entry["path"] == "/v1/courses")
    assert line["trace_id"] == trace_id
    assert line["span_id"] == f"{http_span.context.span_id:016x}"


async def test_tracing_off_records_nothing_and_invents_no_traceparent(
    traced: Traced, spans: InMemorySpanExporter, postgres_url: str
) -> None:
    auth = {"Authorization": f"Bearer {traced.instructor.access_token}"}
    # The gateway that does not trace sends no traceparent: the server's span is a root.
    async with httpx.AsyncClient(base_url=traced.plain_gateway.url, timeout=30) as http:
        listed = await http.get("/v1/courses", params={"pageSize": 1}, headers=auth)
    assert listed.status_code == 200, listed.text
    finished = spans.get_finished_spans()
    assert [s.name for s in finished if s.instrumentation_scope.name == "gateway"] == []  # type: ignore[union-attr]
    assert _named(finished, "learnflow.v1.CatalogService/ListCourses").parent is None

    # Both off: no span at all, for a query or a command, and the event stores no traceparent.
    spans.clear()
    tracing.uninstall()
    try:
        async with httpx.AsyncClient(base_url=traced.plain_gateway.url, timeout=30) as http:
            created = await _create_course(traced, http, f"Untraced {uuid.uuid4().hex[:8]}")
            fetched = await http.get(
                f"/v1/courses/{created.json()['course']['id']}",
                headers={**auth, "X-Consistency-Token": created.json()["consistencyToken"]},
            )
        assert fetched.status_code == 200, fetched.text
        await asyncio.sleep(0.3)  # a projector batch, were one traced, would have ended
        assert spans.get_finished_spans() == ()
    finally:
        tracing.install(traced.provider)
    url = postgres_url.replace("postgresql+psycopg://", "postgresql://", 1)
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute(
            "SELECT trace_parent FROM events WHERE aggregate_id = %s",
            (created.json()["course"]["id"],),
        )
        assert {row[0] for row in await cur.fetchall()} == {None}


@pytest.mark.parametrize(
    "metadata",
    [
        (("traceparent", "junk"),),
        (("traceparent", "00-" + "0" * 32 + "-" + "0" * 16 + "-01"),),  # all-zero ids: invalid
        (("traceparent", "00-" + "a" * 32 + "-" + "b" * 16 + "-01"), ("tracestate", "=,=;" * 50)),
        (("traceparent", "ff-" + "a" * 32 + "-" + "b" * 16 + "-01"),),  # version ff: invalid
    ],
)
async def test_a_malformed_traceparent_starts_a_new_trace_and_breaks_nothing(
    traced: Traced, spans: InMemorySpanExporter, metadata: tuple[tuple[str, str], ...]
) -> None:
    stub = courses_pb2_grpc.CatalogServiceStub(traced.channel)
    reply = await stub.ListCourses(courses_pb2.ListCoursesRequest(page_size=1), metadata=metadata)
    assert reply is not None
    rpc = _named(spans.get_finished_spans(), "learnflow.v1.CatalogService/ListCourses")
    given = metadata[0][1]
    if given.startswith("00-aaaa"):
        # A valid traceparent is followed; the junk tracestate is dropped, not passed on.
        assert rpc.parent is not None and f"{rpc.context.trace_id:032x}" == "a" * 32
        assert len(rpc.context.trace_state) == 0
    else:
        assert rpc.parent is None
        assert rpc.context.trace_id != 0


async def test_the_gateway_ignores_an_untrusted_callers_trace_context(
    traced: Traced, spans: InMemorySpanExporter
) -> None:
    theirs = "00-" + "c" * 32 + "-" + "d" * 16 + "-01"
    async with httpx.AsyncClient(base_url=traced.gateway.url, timeout=30) as http:
        listed = await http.get(
            "/v1/courses",
            params={"pageSize": 1},
            headers={"traceparent": theirs, "Grpc-Metadata-Traceparent": theirs},
        )
    assert listed.status_code == 200, listed.text
    finished = spans.get_finished_spans()
    http_span = _named(finished, "GET /v1/courses")
    rpc = _named(finished, "learnflow.v1.CatalogService/ListCourses")
    assert http_span.parent is None
    assert f"{http_span.context.trace_id:032x}" != "c" * 32
    # Neither header reached the backend: its span is the gateway's child.
    assert rpc.parent is not None and rpc.parent.span_id == http_span.context.span_id


async def test_probes_and_scrapes_make_no_traces(
    traced: Traced, spans: InMemorySpanExporter
) -> None:
    async with httpx.AsyncClient(base_url=traced.gateway.url, timeout=30) as http:
        for path in ("/healthz", "/readyz", "/metrics"):
            answer = await http.get(path)
            assert answer.status_code == 200, (path, answer.text)
        reloaded = await traced.gateway.app.state.gateway.loader.reload()  # reflection
    assert reloaded is False
    assert spans.get_finished_spans() == ()


async def test_a_server_stream_keeps_its_span_until_it_ends(
    traced: Traced, spans: InMemorySpanExporter
) -> None:
    # Refused inside the stream (not enrolled): the span handed from the interceptor to the
    # stream guard ends there, with the stream's code, under the gateway's span.
    path = f"/v1/users/me/courses/{uuid.uuid4()}/progress:watch"
    auth = {"Authorization": f"Bearer {traced.instructor.access_token}"}
    async with httpx.AsyncClient(base_url=traced.gateway.url, timeout=30) as http:
        refused = await http.get(path, headers={**auth, "Accept": "text/event-stream"})
    assert refused.status_code == 404, refused.text
    finished = spans.get_finished_spans()
    http_span = _named(finished, "GET /v1/users/me/courses/{course_id}/progress:watch")
    rpc = _named(finished, "learnflow.v1.ProgressService/WatchCourseProgress")
    assert rpc.parent is not None and rpc.parent.span_id == http_span.context.span_id
    assert (rpc.attributes or {})["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert rpc.status.status_code is StatusCode.UNSET  # NOT_FOUND is the caller's error
    assert (http_span.attributes or {})["http.response.status_code"] == 404
