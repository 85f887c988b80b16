"""Whose trace context the gateway follows (gateway.tracing.Tracing.parent), and that a
client cannot send trace context to the backend through metadata headers."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from starlette.datastructures import Headers

from gateway.metadata import outgoing_metadata, parse_networks
from gateway.tracing import Tracing

THEIRS = "00-" + "c" * 32 + "-" + "d" * 16 + "-01"


def _scope(peer: str, headers: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": "/",
        "client": (peer, 1234),
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
    }


def _followed(tracing: Tracing, peer: str, headers: dict[str, str]) -> bool:
    scope = _scope(peer, headers)
    context = tracing.parent(scope, Headers(scope=scope))
    span = trace.get_current_span(context).get_span_context()
    return span.is_valid and f"{span.trace_id:032x}" == "c" * 32


@pytest.mark.parametrize(
    ("trust", "peer", "followed"),
    [
        ("none", "10.0.0.5", False),
        ("proxies", "10.0.0.5", True),  # the proxy
        ("proxies", "192.0.2.7", False),  # anyone else
        ("proxies", "not-an-ip", False),
        ("all", "192.0.2.7", True),
    ],
)
def test_an_incoming_traceparent_is_followed_only_where_trusted(
    trust: str, peer: str, followed: bool
) -> None:
    tracing = Tracing(
        TracerProvider().get_tracer("test"),
        trust=trust,
        trusted_proxies=parse_networks(["10.0.0.0/8"]),
    )
    assert _followed(tracing, peer, {"traceparent": THEIRS}) is followed


@pytest.mark.parametrize("junk", ["junk", "00-zz-yy-01", THEIRS + "-extra", "0" * 55])
def test_a_trusted_but_malformed_traceparent_starts_a_new_trace(junk: str) -> None:
    tracing = Tracing(TracerProvider().get_tracer("test"), trust="all")
    scope = _scope("10.0.0.5", {"traceparent": junk, "tracestate": "a=b"})
    context = tracing.parent(scope, Headers(scope=scope))
    assert not trace.get_current_span(context).get_span_context().is_valid


def test_trace_context_metadata_from_a_client_is_dropped() -> None:
    headers = Headers(
        {
            "Grpc-Metadata-Traceparent": THEIRS,
            "Grpc-Metadata-Tracestate": "x=y",
            "Grpc-Metadata-A": "b",
        }
    )
    metadata = outgoing_metadata(headers, "192.0.2.7", "req-1")
    keys = [key for key, _ in metadata]
    assert "traceparent" not in keys and "tracestate" not in keys
    assert ("a", "b") in metadata


def test_plain_gateway_log_lines_end_with_the_ids_of_the_current_span() -> None:
    import io
    import logging

    from gateway.tracing import TraceIds

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(TraceIds())
    handler.setFormatter(logging.Formatter("%(message)s%(trace_ids)s"))
    log = logging.getLogger("gateway.proxy.test")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("outside")
        with TracerProvider().get_tracer("test").start_as_current_span("request") as span:
            log.warning("inside")
            ids = span.get_span_context()
    finally:
        log.removeHandler(handler)
    outside, inside = out.getvalue().splitlines()
    assert outside == "outside"
    assert inside == f"inside trace_id={ids.trace_id:032x} span_id={ids.span_id:016x}"
