"""The gateway serving a built web app (LEARNFLOW_GATEWAY_STATIC_DIR): files, the index.html
fallback for browser navigations, API routes first, caching and the Content-Security-Policy."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.proxy import Gateway
from gateway.settings import Settings, SettingsError
from gateway.static import DEFAULT_CONTENT_SECURITY_POLICY

INDEX = "<!doctype html><title>app</title><script type=module src=/assets/index-AbCd1234.js>"
NAVIGATE = {"Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Mode": "navigate"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dist")
    (root / "index.html").write_text(INDEX)
    (root / "assets").mkdir()
    (root / "assets" / "index-AbCd1234.js").write_text("console.log('app')")
    (root / "favicon.svg").write_text("<svg/>")
    (root.parent / "secret.txt").write_text("outside the site")
    return root


@pytest.fixture(scope="module")
async def site_app(settings: Settings, site: Path) -> AsyncIterator[Starlette]:
    application = create_app(dataclasses.replace(settings, static_dir=str(site)))
    gateway: Gateway = application.state.gateway
    await gateway.start()
    await gateway.wait_loaded(within=10)
    yield application
    await gateway.stop()


@pytest.fixture
async def web(site_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=site_app, client=("127.0.0.1", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
        yield c


async def test_root_serves_the_app_with_its_security_headers(web: httpx.AsyncClient) -> None:
    page = await web.get("/", headers=NAVIGATE)
    assert page.status_code == 200
    assert page.text == INDEX
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == DEFAULT_CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "unsafe-inline" not in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-cache"


async def test_hashed_assets_are_immutable_and_others_revalidate(web: httpx.AsyncClient) -> None:
    script = await web.get("/assets/index-AbCd1234.js")
    assert script.status_code == 200
    assert script.text == "console.log('app')"
    assert "immutable" in script.headers["cache-control"]
    icon = await web.get("/favicon.svg")
    assert icon.status_code == 200 and icon.headers["cache-control"] == "no-cache"
    again = await web.get("/favicon.svg", headers={"If-None-Match": icon.headers["etag"]})
    assert again.status_code == 304


async def test_a_client_side_route_gets_index_html_on_navigation_only(
    web: httpx.AsyncClient,
) -> None:
    page = await web.get("/courses/42/lessons/7", headers=NAVIGATE)
    assert page.status_code == 200 and page.text == INDEX
    # A script or JSON fetch of a missing file is a plain 404, never the page.
    missing = await web.get("/assets/gone-XyZ98765.js", headers={"Sec-Fetch-Mode": "no-cors"})
    assert missing.status_code == 404
    assert missing.json()["code"] == 5
    api_like = await web.get("/nowhere", headers={"Accept": "application/json"})
    assert api_like.status_code == 404


async def test_api_routes_win_over_the_site(web: httpx.AsyncClient) -> None:
    thing = await web.get("/v1/things/7", headers=NAVIGATE)
    assert thing.status_code == 200, thing.text
    assert thing.headers["content-type"].startswith("application/json")
    docs = await web.get("/openapi.json")
    assert docs.status_code == 200 and "paths" in docs.json()
    # A write to a path the API doesn't know is never answered with the page.
    posted = await web.post("/courses/42", headers=NAVIGATE, json={})
    assert posted.status_code in (404, 405)
    assert "<!doctype" not in posted.text


@pytest.mark.parametrize(
    "path",
    ["/../secret.txt", "/%2e%2e/secret.txt", "/assets/../../secret.txt", "/..%2fsecret.txt"],
)
async def test_nothing_outside_the_directory_is_served(web: httpx.AsyncClient, path: str) -> None:
    answer = await web.get(path)
    assert "outside the site" not in answer.text
    assert answer.status_code in (200, 404)  # 200 only as the app's own page


async def test_a_directory_without_index_html_is_refused_at_start(
    settings: Settings, tmp_path: Path
) -> None:
    with pytest.raises(SettingsError, match=r"index\.html"):
        create_app(dataclasses.replace(settings, static_dir=str(tmp_path)))


def test_the_settings_read_the_directory_and_the_policy() -> None:
    read = Settings.from_env(
        {
            "LEARNFLOW_GATEWAY_STATIC_DIR": "web/dist",
            "LEARNFLOW_GATEWAY_CONTENT_SECURITY_POLICY": "default-src 'self'",
            "LEARNFLOW_GATEWAY_FORWARD_COOKIES": "lf_refresh, other",
            "LEARNFLOW_GATEWAY_METADATA_HEADERS": "Set-Cookie",
        }
    )
    assert read.static_dir == "web/dist"
    assert read.content_security_policy == "default-src 'self'"
    assert read.forward_cookies == frozenset({"lf_refresh", "other"})
    assert read.metadata_headers == frozenset({"set-cookie"})
    assert Settings.from_env({}).static_dir == ""
