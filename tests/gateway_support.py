"""The real gateway over real HTTP for the LearnFlow end-to-end, fuzz and browser tests.

`running_gateway` starts uvicorn with the gateway app on a free loopback port inside the
test session's event loop, in front of a gRPC target (the `backend` fixture's server), and
waits until the gateway has read the backend's contract through reflection.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.proxy import Gateway
from gateway.settings import Settings as GatewaySettings

PASSWORD = "a-good-password"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class RunningServer:
    host: str
    port: int
    app: Starlette

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The test session owns signals: keep pytest's Ctrl-C handling.
        yield


@contextlib.asynccontextmanager
async def running_app(app: Starlette, host: str = "127.0.0.1") -> AsyncIterator[RunningServer]:
    """Any ASGI app served by uvicorn on a free port, for the lifetime of the context."""
    port = free_port(host)
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="on"
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(), name=f"uvicorn-{port}")
    try:
        async with asyncio.timeout(20):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.02)
        yield RunningServer(host=host, port=port, app=app)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=10)


@contextlib.asynccontextmanager
async def running_gateway(
    grpc_target: str,
    *,
    host: str = "127.0.0.1",
    cors_origins: Sequence[str] = (),
    ready_services: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
) -> AsyncIterator[RunningServer]:
    """The gateway, configured the way `python -m gateway` reads LEARNFLOW_GATEWAY_* (from
    `environ`, else none), on `grpc_target`."""
    settings = replace(
        GatewaySettings.from_env(environ or {}),
        grpc_target=grpc_target,
        host=host,
        cors_origins=tuple(cors_origins),
        reload_interval_s=0,
        ready_services=tuple(ready_services),
        access_log_sample=1.0,  # every line, for the tests that read them
    )
    app = create_app(settings)
    async with running_app(app, host) as running:
        gateway: Gateway = app.state.gateway
        await gateway.wait_loaded(within=20)
        yield running


@dataclass
class HttpUser:
    """A user known only through the HTTP API: what a browser or the web frontend holds."""

    email: str
    user: dict[str, Any]
    access_token: str
    refresh_token: str
    consistency_token: str

    @property
    def user_id(self) -> str:
        value: str = self.user["id"]
        return value

    def headers(self, consistency_token: str = "") -> dict[str, str]:
        out = {"Authorization": f"Bearer {self.access_token}"}
        if consistency_token:
            out["X-Consistency-Token"] = consistency_token
        return out


async def register_over_http(
    client: httpx.AsyncClient, name: str = "Web User", email: str = ""
) -> HttpUser:
    """POST /v1/users:register then POST /v1/sessions, asserting both succeed."""
    email = email or f"web-{uuid.uuid4().hex[:12]}@example.com"
    registered = await client.post(
        "/v1/users:register", json={"email": email, "password": PASSWORD, "displayName": name}
    )
    assert registered.status_code == 200, registered.text
    session = await client.post("/v1/sessions", json={"email": email, "password": PASSWORD})
    assert session.status_code == 200, session.text
    body = session.json()
    # The registration's answer names no user (it must not tell new emails from taken
    # ones): the caller's own profile does.
    me = await client.get(
        "/v1/users/me",
        headers={
            "Authorization": f"Bearer {body['accessToken']}",
            "X-Consistency-Token": registered.json()["consistencyToken"],
        },
    )
    assert me.status_code == 200, me.text
    return HttpUser(
        email=email,
        user=me.json()["user"],
        access_token=body["accessToken"],
        refresh_token=body["refreshToken"],
        consistency_token=registered.json()["consistencyToken"],
    )


async def login_over_http(client: httpx.AsyncClient, email: str) -> dict[str, Any]:
    session = await client.post("/v1/sessions", json={"email": email, "password": PASSWORD})
    assert session.status_code == 200, session.text
    body: dict[str, Any] = session.json()
    return body
