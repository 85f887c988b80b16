"""The gateway's /docs page in a real browser: headless Chromium renders Swagger UI from the
local assets over the live backend's /openapi.json, shows its operations, and leaves a
screenshot in build/screenshots/docs.png (ignored) for a human to look at.

Chromium comes from Debian (`scripts/bootstrap` installs it). Without it the test is skipped,
unless LEARNFLOW_REQUIRE_BROWSER is set (CI sets it), in which case it fails.
"""

from __future__ import annotations

import asyncio
import html
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from learnflow.server import Backend
from tests.gateway_support import RunningServer, running_gateway

BROWSER_TIMEOUT_S = 60
SCREENSHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"


def find_chromium() -> str | None:
    for candidate in (os.environ.get("LEARNFLOW_CHROMIUM"), "chromium", "chromium-browser"):
        if candidate and (path := shutil.which(candidate)):
            return path
    return None


CHROMIUM = find_chromium()
if CHROMIUM is None and not os.environ.get("LEARNFLOW_REQUIRE_BROWSER"):
    pytest.skip(
        "Chromium not found (apt-get install chromium, or scripts/bootstrap); "
        "set LEARNFLOW_REQUIRE_BROWSER=1 to make this a failure",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
async def gateway(backend: Backend) -> AsyncIterator[RunningServer]:
    async with running_gateway(f"127.0.0.1:{backend.port}") as running:
        yield running


async def chromium(url: str, profile: Path, *args: str) -> str:
    """Run headless Chromium on `url` (offline but for loopback) and return its stdout."""
    assert CHROMIUM is not None, "LEARNFLOW_REQUIRE_BROWSER is set but Chromium is missing"
    process = await asyncio.create_subprocess_exec(
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        # Offline: any host but loopback fails to resolve, so a CDN reference would break
        # the page rather than quietly load.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--user-data-dir={profile}",
        "--window-size=1280,1800",
        # Virtual time only advances while nothing is loading: waits for the spec and render.
        "--virtual-time-budget=30000",
        *args,
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(BROWSER_TIMEOUT_S):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode()


async def test_docs_page_renders_the_operations_of_the_spec(
    gateway: RunningServer, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as http:
        spec = (await http.get("/openapi.json")).json()
    operations = {
        (method.upper(), path, op["operationId"])
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if isinstance(op, dict) and "operationId" in op
    }
    assert len(operations) > 10

    dom = await chromium(f"{gateway.url}/docs", tmp_path / "dom", "--dump-dom")
    # Swagger UI renders each operation as an `opblock` whose summary holds the method, the
    # path (data-path) and, with displayOperationId, the operation id.
    rendered_paths = {html.unescape(p) for p in re.findall(r'data-path="([^"]+)"', dom)}
    rendered_ids = set(re.findall(r'class="opblock-summary-operation-id"[^>]*>([^<]+)<', dom))
    assert rendered_paths, dom[-3000:]
    assert {path for _, path, _ in operations} <= rendered_paths
    assert {op_id for _, _, op_id in operations} <= rendered_ids
    assert "Register" in " ".join(rendered_ids)
    # The spec's title made it into the page, and nothing failed to load.
    assert spec["info"]["title"] in dom
    assert "Failed to load API definition" not in dom

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / "docs.png"
    shot.unlink(missing_ok=True)
    await chromium(f"{gateway.url}/docs", tmp_path / "shot", f"--screenshot={shot}")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
