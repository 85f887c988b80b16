"""Health, readiness, CORS, settings, logging, contract reload and a real uvicorn run."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.proxy import Gateway, stop_tasks
from gateway.settings import Settings, SettingsError

ORIGIN = "http://localhost:5173"


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_follows_backend_health(
    client: httpx.AsyncClient, set_serving: Callable[[bool], Awaitable[None]]
) -> None:
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "SERVING"}
    await set_serving(False)
    try:
        not_ready = await client.get("/readyz")
        assert not_ready.status_code == 503
        assert not_ready.json() == {"status": "NOT_SERVING"}
    finally:
        await set_serving(True)
    assert (await client.get("/readyz")).status_code == 200


async def test_readyz_when_backend_is_down() -> None:
    app = create_app(Settings(grpc_target=f"127.0.0.1:{_free_port()}", reload_interval_s=0))
    gateway: Gateway = app.state.gateway
    await gateway.start()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            assert (await client.get("/healthz")).status_code == 200
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            api = await client.get("/v1/things/t1")
            assert api.status_code == 503
            assert api.json()["code"] == 14
            assert api.headers["retry-after"] == "1"
    finally:
        await gateway.stop()


async def test_cors_preflight(client: httpx.AsyncClient) -> None:
    response = await client.options(
        "/v1/things/t1",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": (
                "authorization, content-type, x-request-id, x-consistency-token, "
                "idempotency-key, last-event-id"
            ),
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "PATCH" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    # Idempotency-Key (the documented form of requestId) and Last-Event-ID (SSE resume) too.
    for header in (
        "authorization",
        "content-type",
        "x-request-id",
        "x-consistency-token",
        "idempotency-key",
        "last-event-id",
    ):
        assert header in allowed, header
    refused = await client.options(
        "/v1/things/t1",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert refused.status_code == 400


async def test_cors_simple_request_exposes_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/echo", headers={"Origin": ORIGIN})
    assert response.headers["access-control-allow-origin"] == ORIGIN
    exposed = {
        h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")
    }
    assert {"x-request-id", "x-consistency-token", "retry-after"} <= exposed
    assert "grpc-metadata-x-echo-initial" in exposed  # from settings.cors_expose_metadata


def test_settings_from_env() -> None:
    defaults = Settings.from_env({})
    assert defaults.grpc_target == "127.0.0.1:50051"
    assert defaults.cors_origins == ("http://localhost:5173", "http://127.0.0.1:5173")
    assert defaults.max_body_bytes == 1024 * 1024
    assert defaults.default_timeout_s == 30.0
    assert (defaults.host, defaults.port) == ("127.0.0.1", 8080)
    custom = Settings.from_env(
        {
            "LEARNFLOW_GATEWAY_GRPC_TARGET": "10.0.0.1:9",
            "LEARNFLOW_GATEWAY_CORS_ORIGINS": "https://a.example, https://b.example,",
            "LEARNFLOW_GATEWAY_MAX_BODY_BYTES": "10",
            "LEARNFLOW_GATEWAY_DEFAULT_TIMEOUT_S": "2.5",
            "LEARNFLOW_GATEWAY_HOST": "0.0.0.0",
            "LEARNFLOW_GATEWAY_PORT": "9000",
        }
    )
    assert custom.grpc_target == "10.0.0.1:9"
    assert custom.cors_origins == ("https://a.example", "https://b.example")
    assert custom.max_body_bytes == 10
    assert custom.default_timeout_s == 2.5
    assert (custom.host, custom.port) == ("0.0.0.0", 9000)
    with pytest.raises(SettingsError):
        Settings.from_env({"LEARNFLOW_GATEWAY_PORT": "eighty"})


async def test_one_json_access_log_line_per_request(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="gateway.access"):
        await client.get("/v1/things/t1", headers={"X-Request-Id": "log-1"})
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.access"]
    assert len(lines) == 1
    line = lines[0]
    assert line["method"] == "GET" and line["path"] == "/v1/things/t1"
    assert line["status"] == 200 and line["request_id"] == "log-1"
    assert line["grpc_method"] == "/gwtest.v1.ThingService/GetThing"
    assert isinstance(line["duration_ms"], float)


async def test_fast_successes_are_sampled_and_failures_always_logged(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(dataclasses.replace(settings, access_log_sample=0.0))
    gateway: Gateway = app.state.gateway
    await gateway.start()
    try:
        await gateway.wait_loaded(within=10)
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            with caplog.at_level(logging.INFO, logger="gateway.access"):
                ok = await client.get("/v1/things/t1")
                missing = await client.get("/v1/nothing-here")
    finally:
        await gateway.stop()
    assert (ok.status_code, missing.status_code) == (200, 404)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.access"]
    assert [(line["path"], line["status"]) for line in lines] == [("/v1/nothing-here", 404)]
    assert (
        Settings.from_env({"LEARNFLOW_GATEWAY_ACCESS_LOG_SAMPLE": "0.5"}).access_log_sample == 0.5
    )
    with pytest.raises(SettingsError):
        Settings.from_env({"LEARNFLOW_GATEWAY_ACCESS_LOG_SAMPLE": "2"})


async def test_reload_does_not_exist_without_a_configured_token() -> None:
    app = create_app(Settings(grpc_target=f"127.0.0.1:{_free_port()}", reload_interval_s=0))
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        # Loopback alone used to be enough.
        response = await client.post("/-/reload")
        assert response.status_code == 404
        bearer = {"Authorization": "Bearer anything"}
        assert (await client.post("/-/reload", headers=bearer)).status_code == 404


async def test_reload_requires_the_bearer_token(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    assert (await client.post("/-/reload")).status_code == 401
    wrong = await client.post("/-/reload", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    basic = await client.post(
        "/-/reload", headers={"Authorization": "Basic " + settings.reload_token}
    )
    assert basic.status_code == 401


async def test_reload_unchanged(client: httpx.AsyncClient, settings: Settings) -> None:
    auth = {"Authorization": f"Bearer {settings.reload_token}"}
    response = await client.post("/-/reload", headers=auth)
    assert response.status_code == 200
    assert response.json()["changed"] is False
    assert response.json()["services"] == ["gwtest.v1.ThingService"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def serve(app: Starlette) -> AsyncIterator[str]:
    """Run the app under a real uvicorn (so the lifespan runs) on a free loopback port."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def _wait_for(client: httpx.AsyncClient, url: str, status: int) -> httpx.Response:
    for _ in range(200):
        response = await client.get(url)
        if response.status_code == status:
            return response
        await asyncio.sleep(0.05)
    raise AssertionError(f"{url} never answered {status}; last: {response.status_code}")


async def test_end_to_end_under_uvicorn_with_contract_change(
    launch_backend: Callable[[int, bool], Awaitable[Callable[[], Awaitable[None]]]],
) -> None:
    """The gateway starts before the backend, then notices a redeploy with a new service."""
    port = _free_port()
    app = create_app(Settings(grpc_target=f"127.0.0.1:{port}", reload_interval_s=0.2))
    async with serve(app) as base, httpx.AsyncClient(base_url=base) as client:
        # Backend not up yet: alive but not ready.
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 503
        stop_first = await launch_backend(port, False)
        try:
            await _wait_for(client, "/readyz", 200)
            thing = await client.get("/v1/things/t1")
            assert thing.status_code == 200 and thing.json()["id"] == "t1"
            async with client.stream(
                "GET", "/v1/things:stream?count=2", headers={"Accept": "text/event-stream"}
            ) as stream:
                events = [line async for line in stream.aiter_lines() if line.startswith("data: ")]
            assert [json.loads(e.removeprefix("data: "))["id"] for e in events] == ["0", "1"]
            assert (await client.get("/v1/extra/abc")).status_code == 404
        finally:
            await stop_first()
        stop_second = await launch_backend(port, True)
        try:
            # The periodic check picks the new service up without a manual reload.
            reflected = await _wait_for(client, "/v1/extra/abc", 200)
            assert reflected.json() == {"value": "cba"}
            doc = await client.get("/openapi.json")
            assert "/v1/extra/{value}" in doc.json()["paths"]
        finally:
            await stop_second()


async def test_every_refusal_is_a_status_json_even_outside_the_api(
    client: httpx.AsyncClient,
) -> None:
    # An encoded newline in the path: no route, but still the gateway's error model.
    odd = await client.get("/v1/things/a%0Ab/c%0A")
    assert odd.status_code == 404
    assert odd.headers["content-type"].startswith("application/json")
    assert odd.json()["code"] == 5
    # A wrong method on a fixed endpoint is Starlette's refusal, rendered the same way.
    wrong = await client.post("/healthz")
    assert wrong.status_code == 405
    assert wrong.headers["content-type"].startswith("application/json")
    assert wrong.json()["code"] == 12
    assert "GET" in wrong.headers["allow"]


async def test_stopping_background_tasks_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    async def loses_one_cancellation() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(60)
        await asyncio.sleep(60)

    released = asyncio.Event()

    async def ignores_every_cancellation() -> None:
        while not released.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(60)

    lossy = asyncio.create_task(loses_one_cancellation(), name="lossy")
    stubborn = asyncio.create_task(ignores_every_cancellation(), name="stubborn")
    await asyncio.sleep(0)
    started = asyncio.get_running_loop().time()
    with caplog.at_level(logging.ERROR, logger="gateway.proxy"):
        await stop_tasks([lossy, stubborn], patience_s=0.1, attempts=3)
    assert asyncio.get_running_loop().time() - started < 1.0
    assert lossy.cancelled()
    assert not stubborn.done()
    assert "stubborn ignored cancellation" in caplog.text
    released.set()
    stubborn.cancel()
    await asyncio.wait({stubborn}, timeout=1)
    assert stubborn.done()
