"""The `learnflow` command: clear one-line failures instead of tracebacks."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import grpc

from learnflow.server import Backend
from tests.conftest import MONGO_URL
from tests.support import PASSWORD, Caller

REPO = Path(__file__).resolve().parent.parent


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "learnflow", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_unreachable_postgres_is_one_clear_line() -> None:
    result = run_cli(
        "doctor",
        LEARNFLOW_POSTGRES_URL="postgresql://postgres@127.0.0.1:1/learnflow",
        LEARNFLOW_MONGO_URL=MONGO_URL,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "PostgreSQL unreachable at postgresql+psycopg://postgres@127.0.0.1:1" in lines[0]
    assert "LEARNFLOW_POSTGRES_URL" in lines[0]
    assert "Traceback" not in result.stderr


def test_unreachable_mongodb_is_one_clear_line() -> None:
    result = run_cli("doctor", LEARNFLOW_MONGO_URL="mongodb://127.0.0.1:1/")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "MongoDB unreachable at mongodb://127.0.0.1:1/" in lines[0]
    assert "Traceback" not in result.stderr


def test_demo_data_is_refused_in_production() -> None:
    result = run_cli("demo-data", LEARNFLOW_ENV="production")
    assert result.returncode == 1
    assert "refused when LEARNFLOW_ENV=production" in result.stderr


async def test_the_readme_typed_client_works(backend: Backend) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{backend.port}") as channel:
        caller = await Caller.register(channel, name="Typed Client")
    result = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            str(REPO / "examples" / "typed_client.py"),
            f"127.0.0.1:{backend.port}",
            caller.user.email,
            PASSWORD,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"Typed Client {caller.user.email}"
