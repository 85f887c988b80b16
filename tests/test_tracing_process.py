"""`learnflow serve` with LEARNFLOW_TRACING=otlp as a real process: its spans arrive over
OTLP/gRPC at a collector on a loopback port (a minimal one: the OTLP trace service, recording
what it is sent), continuing the caller's trace."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from learnflow.settings import Settings
from learnflow.v1 import courses_pb2, courses_pb2_grpc
from tests.server_process import free_port, server_process

TRACE_ID = "5" * 32
CALLER_SPAN_ID = "6" * 16


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans: list[tuple[str, trace_pb2.Span]] = []

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            service = next(
                (
                    a.value.string_value
                    for a in resource_spans.resource.attributes
                    if a.key == "service.name"
                ),
                "",
            )
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend((service, span) for span in scope_spans.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


@contextlib.asynccontextmanager
async def collector() -> AsyncIterator[tuple[Collector, int]]:
    server = grpc.aio.server()
    servicer = Collector()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port(f"127.0.0.1:{free_port()}")
    await server.start()
    try:
        yield servicer, port
    finally:
        await server.stop(None)


async def test_the_server_exports_its_spans_over_otlp(settings: Settings) -> None:
    async with collector() as (received, port):
        env = {
            "LEARNFLOW_TRACING": "otlp",
            "LEARNFLOW_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
            "LEARNFLOW_TRACE_SAMPLE_RATIO": "0",  # the caller's sampled flag decides
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        async with (
            server_process(settings, extra_env=env) as server,
            grpc.aio.insecure_channel(server.target) as channel,
        ):
            stub = courses_pb2_grpc.CatalogServiceStub(channel)
            traceparent = f"00-{TRACE_ID}-{CALLER_SPAN_ID}-01"
            await stub.ListCourses(
                courses_pb2.ListCoursesRequest(page_size=1),
                metadata=(("traceparent", traceparent),),
            )
            # Not sampled by the caller, ratio 0: recorded nowhere.
            await stub.ListCourses(
                courses_pb2.ListCoursesRequest(page_size=1),
                metadata=(("traceparent", f"00-{'7' * 32}-{CALLER_SPAN_ID}-00"),),
            )

            async def rpc_span() -> tuple[str, trace_pb2.Span]:
                while True:
                    for service, span in received.spans:
                        if span.name == "learnflow.v1.CatalogService/ListCourses":
                            return service, span
                    await asyncio.sleep(0.05)

            service, span = await asyncio.wait_for(rpc_span(), timeout=20)
        # The process has stopped (and flushed): everything it would send has arrived.
    assert service == "learnflow-server"
    assert span.trace_id.hex() == TRACE_ID
    assert span.parent_span_id.hex() == CALLER_SPAN_ID
    assert span.kind == trace_pb2.Span.SPAN_KIND_SERVER
    children = [s for _, s in received.spans if s.parent_span_id == span.span_id]
    assert any(s.name.startswith("find ") for s in children), [s.name for _, s in received.spans]
    # The caller that did not sample its trace got none recorded.
    assert "7" * 32 not in {s.trace_id.hex() for _, s in received.spans}
