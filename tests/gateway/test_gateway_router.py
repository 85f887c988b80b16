"""The gateway's router answers exactly as Starlette's for every path, and sends API paths to
the transcoder without trying the fixed endpoints' patterns."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, Router
from starlette.types import Receive, Scope, Send

from gateway.app import FixedPathsRouter


class CountingRoute(Route):
    tried = 0

    def matches(self, scope: Scope) -> Any:
        CountingRoute.tried += 1
        return super().matches(scope)


async def fixed(request: Request) -> Response:
    return PlainTextResponse(f"fixed {request.url.path}")


async def transcoder(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse(f"default {scope['path']}", status_code=404)(scope, receive, send)


ROUTES = [
    CountingRoute("/healthz", fixed, methods=["GET"]),
    CountingRoute("/", fixed, methods=["GET"]),
    CountingRoute("/-/reload", fixed, methods=["POST"]),
]


async def answer(router: Router, method: str, path: str) -> tuple[int, str, str | None]:
    router.default = transcoder
    transport = httpx.ASGITransport(app=router)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        response = await client.request(method, path, follow_redirects=False)
    return response.status_code, response.text, response.headers.get("location")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/healthz"),
        ("GET", "/healthz/"),  # redirected to the route
        ("POST", "/healthz"),  # 405
        ("GET", "/"),
        ("GET", "//"),
        ("GET", "/-/reload"),  # 405
        ("POST", "/-/reload/"),
        ("GET", "/v1/courses"),
        ("GET", "/v1/courses/"),
        ("DELETE", "/v1/courses/abc"),
        ("GET", "/healthzz"),
        ("GET", "/v1/courses/%0A"),
    ],
)
async def test_answers_as_starlettes_router(method: str, path: str) -> None:
    theirs = await answer(Router(routes=list(ROUTES)), method, path)
    ours = await answer(FixedPathsRouter(routes=list(ROUTES)), method, path)
    assert ours == theirs


async def test_api_paths_skip_the_fixed_patterns() -> None:
    CountingRoute.tried = 0
    await answer(Router(routes=list(ROUTES)), "GET", "/v1/courses")
    assert CountingRoute.tried == 2 * len(ROUTES)  # every pattern, then again for the slash
    CountingRoute.tried = 0
    assert (await answer(FixedPathsRouter(routes=list(ROUTES)), "GET", "/v1/courses"))[0] == 404
    assert CountingRoute.tried == 0


async def test_a_route_with_parameters_keeps_starlettes_way() -> None:
    routes = [*ROUTES, CountingRoute("/things/{id}", fixed, methods=["GET"])]
    assert (await answer(FixedPathsRouter(routes=routes), "GET", "/things/7"))[
        1
    ] == "fixed /things/7"
    CountingRoute.tried = 0
    await answer(FixedPathsRouter(routes=routes), "GET", "/v1/courses")
    assert CountingRoute.tried > 0
