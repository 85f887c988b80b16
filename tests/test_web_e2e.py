"""The built web app (web/dist) end to end in headless Chromium: a real `learnflow serve`, the
real gateway (`python -m gateway`) serving web/dist, demo data, and the Playwright specs of
web/e2e run by Vitest (web/vitest.e2e.config.ts) against that URL.

This builds nothing: run `make web` first. Until the gateway serves static files
(LEARNFLOW_GATEWAY_STATIC_DIR), the app is served by `vite preview`, which forwards the API to
the gateway the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import httpx
import pytest

from learnflow.mail.sink import sink_controller
from learnflow.settings import Settings
from tests.server_process import ServerProcess, free_port, server_process

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "web"
DIST = WEB / "dist"
CHROMIUM = os.environ.get("LEARNFLOW_CHROMIUM", "/usr/bin/chromium")


@contextlib.asynccontextmanager
async def _process(
    *args: str, env: Mapping[str, str], cwd: Path, log: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *args, env={**os.environ, **env}, cwd=cwd, stdout=out, stderr=asyncio.subprocess.STDOUT
        )
        try:
            yield proc
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


async def _wait_http(url: str, proc: asyncio.subprocess.Process, log: Path) -> httpx.Response:
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(timeout=2) as http:
        while True:
            if proc.returncode is not None:
                pytest.fail(f"{url}: the process exited:\n{await asyncio.to_thread(log.read_text)}")
            with contextlib.suppress(httpx.HTTPError):
                response = await http.get(url)
                if response.status_code < 500:
                    return response
            if time.monotonic() > deadline:
                pytest.fail(f"{url} did not come up:\n{await asyncio.to_thread(log.read_text)}")
            await asyncio.sleep(0.3)


def _cli_env(settings: Settings) -> dict[str, str]:
    return {
        "LEARNFLOW_ENV": "test",
        "LEARNFLOW_POSTGRES_URL": settings.postgres_url,
        "LEARNFLOW_POSTGRES_MIGRATION_URL": settings.postgres_migration_url,
        "LEARNFLOW_MONGO_URL": settings.mongo_url,
        "LEARNFLOW_MONGO_DATABASE": settings.mongo_database,
        "LEARNFLOW_SIGNING_KEYS_DIR": str(settings.signing_keys_dir),
    }


@contextlib.asynccontextmanager
async def _app_url(server: ServerProcess, logs: Path, port: int) -> AsyncIterator[str]:
    """The gateway on `port`, serving web/dist; `vite preview` in front of it while it
    cannot."""
    gateway_env = {
        "LEARNFLOW_GATEWAY_GRPC_TARGET": server.target,
        "LEARNFLOW_GATEWAY_PORT": str(port),
        "LEARNFLOW_GATEWAY_RELOAD_INTERVAL_S": "0",
        "LEARNFLOW_GATEWAY_STATIC_DIR": str(DIST),
        # The refresh-token cookie both ways, as scripts/run sets them.
        "LEARNFLOW_GATEWAY_FORWARD_COOKIES": "lf_refresh",
        "LEARNFLOW_GATEWAY_METADATA_HEADERS": "set-cookie",
    }
    gateway_log = logs / "gateway.log"
    async with _process(
        sys.executable, "-m", "gateway", env=gateway_env, cwd=ROOT, log=gateway_log
    ) as gateway:
        # `localhost`: browsers keep the `Secure` session cookie over plain HTTP there only.
        gateway_url = f"http://localhost:{port}"
        await _wait_http(f"{gateway_url}/openapi.json", gateway, gateway_log)
        async with httpx.AsyncClient(timeout=5) as http:
            index = await http.get(f"{gateway_url}/", headers={"Accept": "text/html"})
        if index.status_code == 200 and "text/html" in index.headers.get("content-type", ""):
            yield gateway_url
            return
        preview_port = free_port()
        preview_log = logs / "preview.log"
        vite = str(WEB / "node_modules" / ".bin" / "vite")
        async with _process(
            vite, "preview", "--port", str(preview_port), "--strictPort", "--host", "127.0.0.1",
            env={"LEARNFLOW_GATEWAY_URL": gateway_url}, cwd=WEB, log=preview_log,
        ) as preview:  # fmt: skip
            url = f"http://localhost:{preview_port}"
            await _wait_http(f"{url}/", preview, preview_log)
            yield url


async def test_web_app_end_to_end(settings: Settings, tmp_path: Path) -> None:
    if not (DIST / "index.html").exists():
        pytest.fail("web/dist is missing: build the web app first (`make web`)")
    if not (WEB / "node_modules" / ".bin" / "vitest").exists():
        pytest.fail("web/node_modules is missing: run `scripts/bootstrap` (npm ci in web/)")
    if not shutil.which(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM} (set LEARNFLOW_CHROMIUM)")
    # The app's URL is known before the server starts: the links in its mail point there.
    port = free_port()
    # The real mail path: the server's sender delivers over SMTP to the development sink,
    # whose files the specs read (web/e2e/mailbox.ts).
    mail_dir = tmp_path / "mail"
    smtp_port = free_port()
    sink = sink_controller(mail_dir, "127.0.0.1", smtp_port)
    await asyncio.to_thread(sink.start)
    mail_env = {
        "LEARNFLOW_PUBLIC_URL": f"http://localhost:{port}",
        "LEARNFLOW_SMTP_HOST": "127.0.0.1",
        "LEARNFLOW_SMTP_PORT": str(smtp_port),
        "LEARNFLOW_SMTP_SECURITY": "none",
    }
    try:
        await _run_specs(settings, tmp_path, port, mail_env, mail_dir)
    finally:
        await asyncio.to_thread(sink.stop)


async def _run_specs(
    settings: Settings, tmp_path: Path, port: int, mail_env: dict[str, str], mail_dir: Path
) -> None:
    async with server_process(settings, extra_env=mail_env) as server:
        demo = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "learnflow", "demo-data",
            env={**os.environ, **_cli_env(settings)},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        demo_out, _ = await demo.communicate()
        assert demo.returncode == 0, demo_out.decode()
        async with _app_url(server, tmp_path, port) as url:
            run = await asyncio.create_subprocess_exec(
                str(WEB / "node_modules" / ".bin" / "vitest"),
                "run", "--config", "vitest.e2e.config.ts",
                env={
                    **os.environ,
                    "E2E_BASE_URL": url,
                    "E2E_CHROMIUM": CHROMIUM,
                    "E2E_MAIL_DIR": str(mail_dir),
                    "CI": "1",
                },
                cwd=WEB, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            try:
                output, _ = await asyncio.wait_for(run.communicate(), 300)
            except TimeoutError:
                run.kill()
                output, _ = await run.communicate()
    text = output.decode(errors="replace")
    # Kept beside the screenshots (web/test-results/, ignored) for a look after the run.
    (WEB / "test-results").mkdir(exist_ok=True)
    (WEB / "test-results" / "e2e-output.txt").write_text(text, encoding="utf-8")
    assert run.returncode == 0, f"web/e2e failed against {url}:\n{text}"
