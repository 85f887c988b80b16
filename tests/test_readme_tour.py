"""The README's tour through the gateway runs as written (against a test gateway)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from learnflow.server import Backend
from learnflow.settings import Settings
from tests.commands_support import Pg
from tests.gateway_support import RunningServer, running_gateway
from tests.mail_support import mail_settings, running_sender, set_aside_queued, smtp_server

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"


def tour_script() -> str:
    text = README.read_text()
    start = text.index("Through the gateway, as the web app does")
    block = re.search(r"```sh\n(.*?)```", text[start:], re.S)
    assert block is not None, "the tour's shell block is gone from README.md"
    return block.group(1)


@pytest.fixture(scope="module")
async def gateway(backend: Backend) -> AsyncIterator[RunningServer]:
    async with running_gateway(f"127.0.0.1:{backend.port}") as running:
        yield running


@pytest.fixture(scope="module")
async def mailbox(
    backend: Backend,
    settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_url: str,
) -> AsyncIterator[Path]:
    """What `make run` has: a mail sink on loopback and the server's sender pointed at it."""
    directory = tmp_path_factory.mktemp("tour-mail")
    await set_aside_queued(Pg(postgres_url))
    with smtp_server(directory) as port:
        async with running_sender(backend.db, mail_settings(settings, port)):
            yield directory


async def test_the_gateway_tour_runs_as_written(gateway: RunningServer, mailbox: Path) -> None:
    host = gateway.url.removeprefix("http://")
    script = "set -eu\n" + tour_script().replace("localhost:8080", host)
    result = await asyncio.to_thread(
        subprocess.run,
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "LEARNFLOW_MAIL_DIR": str(mailbox)},
    )
    assert result.returncode == 0, result.stderr
    # curl prints each body without a newline: read the JSON documents one after the other.
    decoder = json.JSONDecoder()
    me, end = decoder.raw_decode(result.stdout)
    listing, end = decoder.raw_decode(result.stdout, end)
    assert me["user"]["displayName"] == "Ada"
    assert me["user"]["emailVerified"] is False
    assert isinstance(listing.get("courses", []), list)
    requested, end = decoder.raw_decode(result.stdout, end)
    assert list(requested) == ["consistencyToken"]
    # `learnflow mail show`: the headers, then the text with the link.
    rest = result.stdout[end:]
    assert "Subject: Reset your LearnFlow password" in rest
    assert "http://127.0.0.1:8080/reset-password?token=" in rest
    confirmed, end = decoder.raw_decode(rest, rest.index('{"consistencyToken"'))
    assert list(confirmed) == ["consistencyToken"]
    # Logged in with the new password; then the OpenAPI document.
    assert rest[end:].startswith('Bearer\n{"openapi"')
