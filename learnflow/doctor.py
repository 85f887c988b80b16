"""`learnflow doctor`: is this installation able to run, and what is running?

Required (exit status 1 when one fails): the settings make sense, PostgreSQL and MongoDB
answer, the schema is at the latest migration, and the shared rate-limit storage answers when
one is configured. Reported only: whether a server answers on LEARNFLOW_GRPC_LISTEN and a
gateway on LEARNFLOW_GATEWAY_HOST/PORT (doctor may well run before them), whether the SMTP
server answers (or mail is off), and the mail outbox's queued and failed jobs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import smtplib
import urllib.request
from dataclasses import dataclass

from alembic.script import ScriptDirectory
from sqlalchemy import text

from learnflow.dependencies import dependencies_reachable
from learnflow.mail.sender import queue_counts
from learnflow.migrations import alembic_config
from learnflow.projections.store import ReadStore
from learnflow.settings import Settings
from learnflow.storage.unit_of_work import Database


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True


async def examine(settings: Settings) -> list[Check]:
    problems = settings.problems()
    report = [Check("settings", not problems, "; ".join(problems) or "valid")]
    db = Database.connect(settings.postgres_url, pool_size=1)
    store = ReadStore.connect(settings.mongo_url, settings.mongo_database)
    try:
        unreachable = await dependencies_reachable(db, store)
        report.append(
            Check("postgres", "postgres" not in unreachable, unreachable.get("postgres", "answers"))
        )
        report.append(
            Check("mongodb", "mongodb" not in unreachable, unreachable.get("mongodb", "answers"))
        )
        if "postgres" not in unreachable:
            report.append(await _migrations(db, settings))
            report.append(await _email_jobs(db, settings))
    finally:
        await db.close()
        await store.close()
    if settings.rate_limit_storage.startswith(("redis://", "rediss://", "async+redis")):
        report.append(await _redis(settings.rate_limit_storage))
    report.append(await asyncio.to_thread(_smtp, settings))
    report.append(await _server(settings.grpc_listen))
    report.append(await asyncio.to_thread(_gateway))
    return report


async def _migrations(db: Database, settings: Settings) -> Check:
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its plugin chatter is not ours
    head = ScriptDirectory.from_config(alembic_config(settings.postgres_migration_url))
    latest = head.get_current_head()
    try:
        async with db.engine.connect() as conn:
            current = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    except Exception as exc:
        return Check(
            "migrations", False, f"no schema ({type(exc).__name__}): run learnflow migrate"
        )
    if current != latest:
        return Check("migrations", False, f"at {current}, latest {latest}: run learnflow migrate")
    return Check("migrations", True, f"at the latest ({latest})")


def _smtp(settings: Settings) -> Check:
    """Connects and greets (EHLO, and STARTTLS when configured); logs in to nothing and sends
    nothing, so no credential is used or shown."""
    if not settings.smtp_host:
        return Check(
            "smtp", False, "mail off (LEARNFLOW_SMTP_HOST is empty): mail stays queued", False
        )
    target = f"{settings.smtp_host}:{settings.smtp_port} ({settings.smtp_security})"
    timeout = min(settings.smtp_timeout_s, 5.0)
    try:
        client: smtplib.SMTP
        if settings.smtp_security == "tls":
            client = smtplib.SMTP_SSL(settings.smtp_host, settings.smtp_port, timeout=timeout)
        else:
            client = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout)
        with client:
            client.ehlo()
            if settings.smtp_security == "starttls":
                client.starttls()
            client.noop()
    except (OSError, smtplib.SMTPException) as exc:
        return Check("smtp", False, f"{target} unreachable: {type(exc).__name__}", False)
    return Check("smtp", True, f"{target} answers", False)


async def _email_jobs(db: Database, settings: Settings) -> Check:
    try:
        counts = await queue_counts(db)
    except Exception as exc:
        return Check("email jobs", False, f"cannot count ({type(exc).__name__})", False)
    queued, failed = counts.get("queued", 0), counts.get("failed", 0)
    detail = f"{queued} queued, {failed} failed"
    if queued and not settings.smtp_host:
        detail += " (mail off: queued jobs wait for LEARNFLOW_SMTP_HOST)"
    return Check("email jobs", failed == 0, detail, False)


async def _redis(url: str) -> Check:
    import redis.asyncio

    client = redis.asyncio.from_url(url.removeprefix("async+"), socket_connect_timeout=2)
    try:
        async with asyncio.timeout(3):
            await client.ping()
    except Exception as exc:
        return Check("redis", False, f"rate-limit storage unreachable: {type(exc).__name__}")
    finally:
        await client.aclose()
    return Check("redis", True, "rate-limit storage answers")


async def _server(target: str) -> Check:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    try:
        async with grpc.aio.insecure_channel(target) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=2
            )
    except grpc.aio.AioRpcError as exc:
        return Check("server", False, f"none answers on {target} ({exc.code().name})", False)
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return Check("server", status == "SERVING", f"{target}: {status}", False)


def _gateway() -> Check:
    host = os.environ.get("LEARNFLOW_GATEWAY_HOST", "127.0.0.1")
    port = os.environ.get("LEARNFLOW_GATEWAY_PORT", "8080")
    url = f"http://{host}:{port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return Check("gateway", True, f"{url}: {reply.status}", False)
    except Exception as exc:
        return Check("gateway", False, f"none answers at {url} ({type(exc).__name__})", False)
