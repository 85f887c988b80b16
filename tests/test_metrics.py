"""Prometheus metrics, live: RPCs and HTTP requests, then the server's metrics endpoint and the
gateway's /metrics scraped over real HTTP, with the families of issue 18 and live values."""

from __future__ import annotations

import asyncio
import time

import grpc
import httpx
import pytest

from learnflow import metrics
from learnflow.server import Backend
from learnflow.settings import Settings
from learnflow.v1 import courses_pb2
from tests.commands_support import published_course
from tests.gateway_support import free_port, running_gateway
from tests.metrics_support import family_names, id_like_labels, value
from tests.read_support import catalog, settle
from tests.server_process import server_process
from tests.support import Caller
from tests.test_rate_limits import limited_server, signing_keys

GET_COURSE = "/learnflow.v1.CatalogService/GetCourse"
GET_SIGNING_KEYS = "/learnflow.v1.IdentityService/GetSigningKeys"

SERVER_FAMILIES = {
    "learnflow_grpc_requests",
    "learnflow_grpc_request_duration_seconds",
    "learnflow_grpc_in_flight_requests",
    "learnflow_projection_lag_seconds",
    "learnflow_projection_lag_events",
    "learnflow_projection_checkpoint_position",
    "learnflow_projection_parked_events",
    "learnflow_projector_leader",
    "learnflow_read_cache_hits",
    "learnflow_read_cache_misses",
    "learnflow_read_cache_evictions",
    "learnflow_read_cache_documents",
    "learnflow_query_cache_hits",
    "learnflow_query_cache_misses",
    "learnflow_query_cache_shared",
    "learnflow_query_cache_evictions",
    "learnflow_query_cache_entries",
    "learnflow_rate_limit_refusals",
    "learnflow_db_pool_connections",
    "learnflow_consistency_waits",
    "learnflow_consistency_wait_seconds",
}
GATEWAY_FAMILIES = {
    "gateway_http_requests",
    "gateway_http_request_duration_seconds",
    "gateway_http_in_flight_requests",
}

_metrics_port: int | None = None


def metrics_url() -> str:
    """The in-process server registry over HTTP (one endpoint per test process)."""
    global _metrics_port
    if _metrics_port is None:
        _metrics_port = metrics.serve_metrics("127.0.0.1:0")
    return f"http://127.0.0.1:{_metrics_port}/metrics"


async def scrape(url: str) -> str:
    async with httpx.AsyncClient(timeout=10) as client:
        reply = await client.get(url)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain")
    return reply.text


async def test_server_and_gateway_metrics_over_http(
    backend: Backend, instructor: Caller, settings: Settings, postgres_url: str
) -> None:
    read = catalog(instructor.channel)
    course, _ = await published_course(instructor)
    token = await settle(postgres_url, backend.store)
    before = await scrape(metrics_url())
    ok = {"method": GET_COURSE, "code": "OK"}

    calls = 5
    for _ in range(calls):
        await read.GetCourse(courses_pb2.GetCourseRequest(course_id=course.id))
    await read.GetCourse(
        courses_pb2.GetCourseRequest(course_id=course.id),
        metadata=(("x-consistency-token", token),),
    )
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await read.GetCourse(courses_pb2.GetCourseRequest(course_id=str(course.id)[::-1]))
    code = missing.value.code().name
    # A refusal by a rate limit, on a server with a tiny read budget.
    async with limited_server(settings, read="2/minute") as (_, limited):
        for _ in range(2):
            await signing_keys(limited, ())
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await signing_keys(limited, ())
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    # The health watcher measures projection progress every 2 s.
    deadline = time.monotonic() + 10
    while True:
        after = await scrape(metrics_url())
        if value(after, "learnflow_projection_checkpoint_position") > 0:
            break
        assert time.monotonic() < deadline, "projection progress never measured"
        await asyncio.sleep(0.5)

    assert family_names(after) >= SERVER_FAMILIES, SERVER_FAMILIES - family_names(after)
    requests = "learnflow_grpc_requests_total"
    assert value(after, requests, **ok) - value(before, requests, **ok) == calls + 1
    assert (
        value(after, requests, method=GET_COURSE, code=code)
        - value(before, requests, method=GET_COURSE, code=code)
        == 1
    )
    assert (
        value(after, requests, method=GET_SIGNING_KEYS, code="RESOURCE_EXHAUSTED")
        - value(before, requests, method=GET_SIGNING_KEYS, code="RESOURCE_EXHAUSTED")
        == 1
    )
    durations = "learnflow_grpc_request_duration_seconds_count"
    assert (
        value(after, durations, method=GET_COURSE) - value(before, durations, method=GET_COURSE)
        == calls + 2
    )
    refusals = "learnflow_rate_limit_refusals_total"
    assert (
        value(after, refusals, rate_class="read") - value(before, refusals, rate_class="read") == 1
    )
    hits = "learnflow_read_cache_hits_total"
    assert value(after, hits) - value(before, hits) >= calls - 1  # repeated reads: cached
    assert value(after, "learnflow_read_cache_documents") > 0
    waits = "learnflow_consistency_waits_total"
    assert value(after, waits, outcome="served") - value(before, waits, outcome="served") >= 1
    assert value(after, "learnflow_consistency_wait_seconds_count") >= 1
    assert (
        value(after, "learnflow_db_pool_connections", state="idle")
        + value(after, "learnflow_db_pool_connections", state="checked_out")
        >= 1
    )
    assert value(after, "learnflow_projection_lag_events") >= 0
    assert value(after, "learnflow_grpc_in_flight_requests") >= 0
    assert not id_like_labels(after), id_like_labels(after)
    assert course.id not in after

    async with (
        running_gateway(f"127.0.0.1:{backend.port}") as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=30) as http,
    ):
        for _ in range(3):
            assert (await http.get(f"/v1/courses/{course.id}")).status_code == 200
        assert (await http.get("/v1/no/such/thing")).status_code == 404
        assert (await http.get("/healthz")).status_code == 200
        reply = await http.get("/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    text = reply.text
    assert family_names(text) >= GATEWAY_FAMILIES
    http_requests = "gateway_http_requests_total"
    template = "/v1/courses/{course_id}"
    assert value(text, http_requests, method="GET", route=template, status="200") == 3
    assert value(text, http_requests, method="GET", route="unmatched", status="404") == 1
    assert value(text, http_requests, method="GET", route="/healthz", status="200") == 1
    assert (
        value(text, "gateway_http_request_duration_seconds_count", method="GET", route=template)
        == 3
    )
    assert value(text, "gateway_http_in_flight_requests") == 1  # this scrape
    assert not id_like_labels(text), id_like_labels(text)
    assert course.id not in text and "/no/such" not in text


async def test_learnflow_serve_exposes_metrics_on_its_port(settings: Settings) -> None:
    port = free_port()
    async with server_process(settings, metrics_listen=f"127.0.0.1:{port}"):
        text = await scrape(f"http://127.0.0.1:{port}/metrics")
    assert family_names(text) >= SERVER_FAMILIES
    # The readiness probe of server_process called Health/Check: counted with its code.
    assert value(text, "learnflow_grpc_requests_total", method="/grpc.health.v1.Health/Check") > 0
