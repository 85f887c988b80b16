"""The `learnflow` command: clear one-line failures instead of tracebacks, and the
projection rebuild run from another process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import grpc

from learnflow.server import Backend
from learnflow.settings import Settings
from learnflow.v1 import learning_pb2
from tests.commands_support import enroll, published_course
from tests.conftest import MONGO_URL
from tests.read_support import progress, settle, snapshot
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
        "migrate",
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
    result = run_cli("projections", "status", LEARNFLOW_MONGO_URL="mongodb://127.0.0.1:1/")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "MongoDB unreachable at mongodb://127.0.0.1:1/" in lines[0]
    assert "Traceback" not in result.stderr


def test_doctor_reports_each_check_and_fails_on_bad_settings(settings: Settings) -> None:
    healthy = run_cli(
        "doctor",
        LEARNFLOW_POSTGRES_URL=settings.postgres_url,
        LEARNFLOW_MONGO_URL=settings.mongo_url,
        LEARNFLOW_RATE_LIMIT_STORAGE="redis://127.0.0.1:1/0",  # configured, unreachable
    )
    lines = healthy.stdout.splitlines()
    assert "ok   settings: valid" in lines
    assert "ok   postgres: answers" in lines
    assert any(line.startswith("ok   migrations: at the latest") for line in lines)
    assert any(line.startswith("FAIL redis: rate-limit storage unreachable") for line in lines)
    assert healthy.returncode == 1
    bad = run_cli(
        "doctor",
        LEARNFLOW_ENV="prod",
        LEARNFLOW_RATE_LIMIT_READ="lots",
        LEARNFLOW_POSTGRES_URL=settings.postgres_url,
        LEARNFLOW_MONGO_URL=settings.mongo_url,
    )
    assert bad.returncode == 1
    settings_line = next(line for line in bad.stdout.splitlines() if "settings" in line)
    assert settings_line.startswith("FAIL settings:")
    assert "LEARNFLOW_ENV='prod'" in settings_line
    assert "LEARNFLOW_RATE_LIMIT_READ='lots'" in settings_line


def test_every_command_refuses_to_run_with_bad_settings() -> None:
    result = run_cli("serve", LEARNFLOW_ENV="staging")
    assert result.returncode == 1
    assert "LEARNFLOW_ENV='staging' is not one of" in result.stderr
    assert "Traceback" not in result.stderr


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("learnflow ")


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


async def test_projections_rebuild_switches_a_running_server_to_the_new_generation(
    backend: Backend, settings: Settings, instructor: Caller, caller: Caller, postgres_url: str
) -> None:
    """`learnflow projections rebuild` from another process while the server projects live:
    the new generation becomes active, holds what the old one held, and the server's projector
    carries on in it (a write made afterwards is readable with its consistency token)."""
    before_course, _ = await published_course(instructor)
    await enroll(caller, before_course.id)
    await settle(postgres_url, backend.store)
    before = await backend.store.active_generation()
    old = await snapshot(backend.store.database(before))

    result = await asyncio.to_thread(
        run_cli,
        "projections",
        "rebuild",
        LEARNFLOW_ENV="test",
        LEARNFLOW_POSTGRES_URL=settings.postgres_url,
        LEARNFLOW_MONGO_URL=settings.mongo_url,
        LEARNFLOW_MONGO_DATABASE=settings.mongo_database,
    )
    assert result.returncode == 0, result.stderr
    assert f"rebuilt read models generation {before + 1}:" in result.stdout
    assert "now active" in result.stdout
    assert await backend.store.active_generation() == before + 1
    rebuilt = await snapshot(backend.store.database(before + 1))
    assert rebuilt == old  # nothing was written meanwhile

    after_course, _ = await published_course(instructor)
    token = (await enroll(caller, after_course.id)).consistency_token
    reply = await progress(caller.channel).ListMyEnrollments(
        learning_pb2.ListMyEnrollmentsRequest(page_size=100), metadata=caller.metadata(token)
    )
    assert {before_course.id, after_course.id} <= {p.course_id for p in reply.enrollments}
    db = await backend.store.active(max_age_s=0)
    assert db.name == backend.store.database(before + 1).name
    assert await db["courses"].find_one({"_id": after_course.id}) is not None
