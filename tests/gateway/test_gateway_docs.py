"""Interactive docs at /docs: local assets only, a strict CSP, linked from `/`."""

from __future__ import annotations

import re

import httpx

from gateway.docs import CONTENT_SECURITY_POLICY, INIT_JS, vendor_dir


async def test_index_links_the_docs_and_the_description(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    body = response.json()
    assert body["docs"] == "/docs"
    assert body["openapi"] == "/openapi.json"


async def test_docs_page_loads_only_local_assets_and_no_inline_script(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    page = response.text
    assert 'data-openapi-url="/openapi.json"' in page
    # Every referenced URL is on this origin: no CDN, so the page works offline.
    urls = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert urls and all(u.startswith("/") and not u.startswith("//") for u in urls), urls
    # Every <script> has a src: nothing inline for the CSP to allow.
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    assert scripts and all('src="' in attrs and not body.strip() for attrs, body in scripts)
    policy = dict(part.split(" ", 1) for part in CONTENT_SECURITY_POLICY.split("; "))
    assert policy["script-src"] == "'self'"
    assert policy["default-src"] == "'none'"


async def test_every_asset_the_page_names_is_served(client: httpx.AsyncClient) -> None:
    page = (await client.get("/docs")).text
    for url in re.findall(r'(?:src|href)="(/docs/assets/[^"]+)"', page):
        response = await client.get(url)
        assert response.status_code == 200, url
        assert response.content, url
    bundle = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert bundle.headers["content-type"].startswith("text/javascript")
    assert bundle.content == (vendor_dir() / "swagger-ui-bundle.js").read_bytes()
    init = await client.get("/docs/assets/init.js")
    assert init.text == INIT_JS
    assert "validatorUrl: null" in init.text  # no call to an online validator either


async def test_only_the_listed_assets_are_served(client: httpx.AsyncClient) -> None:
    for path in ("/docs/assets/index.html", "/docs/assets/../__init__.py", "/docs/assets/"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.json()["code"] == 5
