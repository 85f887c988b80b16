"""The README's tour through the gateway runs as written (against a test gateway)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from learnflow.server import Backend
from tests.gateway_support import RunningServer, running_gateway

README = Path(__file__).resolve().parent.parent / "README.md"


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


async def test_the_gateway_tour_runs_as_written(gateway: RunningServer) -> None:
    host = gateway.url.removeprefix("http://")
    script = "set -eu\n" + tour_script().replace("localhost:8080", host)
    result = await asyncio.to_thread(
        subprocess.run, ["bash", "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    # curl prints each body without a newline: read the JSON documents one after the other.
    decoder = json.JSONDecoder()
    me, end = decoder.raw_decode(result.stdout)
    listing, end = decoder.raw_decode(result.stdout, end)
    assert me["user"]["displayName"] == "Ada"
    assert isinstance(listing.get("courses", []), list)
    assert result.stdout[end:].startswith('{"openapi"')
