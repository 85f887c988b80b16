"""Graceful operations, proven on real `learnflow serve` processes (issue 18, item 4): SIGTERM
drains, the projector is handed over when its leader is killed, and a restarted FerretDB is
survived without restarting LearnFlow. So is a restarted PostgreSQL: that test runs its own
private cluster (`tests.private_postgres`), since the session's is shared by every test."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc
import psycopg
import pytest
from google.protobuf import field_mask_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pymongo import AsyncMongoClient

from learnflow.mail.sink import Mailbox
from learnflow.migrations import upgrade_to_head
from learnflow.projections.store import ReadStore
from learnflow.server import Backend
from learnflow.settings import Settings
from learnflow.v1 import courses_pb2, identity_pb2, identity_pb2_grpc, learning_pb2
from tests.commands_support import courses, enroll, published_course
from tests.mail_support import smtp_server, wait_for_mail
from tests.private_postgres import PrivatePostgres, private_postgres, server_binaries
from tests.read_support import catalog, progress, projector_stopped
from tests.server_process import ServerProcess, free_port, server_process
from tests.support import PASSWORD, Caller

T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent
FERRETDB = REPO / ".state" / "bin" / "ferretdb"

# Measured on loopback (see the report in each test's output), with margin.
# Open streams end as soon as shutdown starts, unary calls in flight complete, then the
# process exits (measured: 0.64 s; it was 10.2 s, the whole grace, before streams watched for
# shutdown).
SIGTERM_EXIT_BOUND_S = 5.0
HANDOVER_BOUND_S = 5.0  # measured 0.2 s with a 0.2 s lock poll
# The health watcher polls every 2 s and each ping times out after 3 s (measured: NOT_SERVING
# after 0.4 s, SERVING again after 2.4 s).
HEALTH_BOUND_S = 8.0


async def _ended_with(call: Any, within_s: float) -> grpc.StatusCode:
    """Reads the stream `call` to its end; its status."""
    try:
        async with asyncio.timeout(within_s):
            while await call.read() is not grpc.aio.EOF:  # type: ignore[attr-defined]
                pass
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def test_sigterm_drains_in_flight_calls_ends_streams_and_exits(
    settings: Settings, backend: Backend, instructor: Caller
) -> None:
    course, _ = await published_course(instructor)
    async with (
        server_process(settings) as server,
        grpc.aio.insecure_channel(server.target) as channel,
    ):
        learner = await Caller.register(channel)
        enrolled = await enroll(learner, course.id)
        await backend.store.wait_for(enrolled.consistency_token, 10)
        stream: Any = progress(channel).WatchCourseProgress(
            learning_pb2.WatchCourseProgressRequest(course_id=course.id),
            metadata=learner.metadata(),
        )
        first = await asyncio.wait_for(stream.read(), 5)
        assert first.progress.course_id == course.id
        ending = asyncio.create_task(_ended_with(stream, 20))
        # Logging in hashes a password: a call still in flight when the signal lands.
        login = asyncio.ensure_future(
            identity_pb2_grpc.IdentityServiceStub(channel).CreateSession(
                identity_pb2.CreateSessionRequest(email=learner.user.email, password=PASSWORD),
                timeout=20,
            )
        )
        await asyncio.sleep(0.02)
        signalled = time.monotonic()
        os.kill(server.pid, signal.SIGTERM)
        returncode = await asyncio.wait_for(server.process.wait(), 20)
        exited_s = time.monotonic() - signalled
        session = await asyncio.wait_for(login, 5)
        code = await asyncio.wait_for(ending, 5)
        ended_s = time.monotonic() - signalled
    print(f"SIGTERM: process exited after {exited_s:.2f} s, stream ended ({code.name})")
    assert returncode == 0
    assert exited_s < SIGTERM_EXIT_BOUND_S
    assert ended_s < SIGTERM_EXIT_BOUND_S
    assert session.access_token
    assert code in (grpc.StatusCode.OK, grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)


def _leader_metric(port: int) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
            body: str = reply.read().decode()
    except OSError:
        return None
    for line in body.splitlines():
        if line.startswith("learnflow_projector_leader "):
            return float(line.split()[1])
    return None


async def _the_leader(ports: list[int], within_s: float) -> int:
    """The index in `ports` of the one process that reports itself projector leader."""
    deadline = time.monotonic() + within_s
    while True:
        values = [await asyncio.to_thread(_leader_metric, port) for port in ports]
        leaders = [i for i, value in enumerate(values) if value == 1.0]
        if len(leaders) == 1:
            return leaders[0]
        assert time.monotonic() < deadline, f"no single projector leader: {values}"
        await asyncio.sleep(0.2)


async def test_the_projector_is_handed_over_when_its_leader_is_killed(
    settings: Settings, backend: Backend, instructor: Caller
) -> None:
    course, _ = await published_course(instructor)
    ports = [free_port(), free_port()]
    env = {"LEARNFLOW_PROJECTOR_POLL_S": "0.2"}
    async with (
        projector_stopped(backend),
        server_process(settings, metrics_listen=f"127.0.0.1:{ports[0]}", extra_env=env) as one,
        server_process(settings, metrics_listen=f"127.0.0.1:{ports[1]}", extra_env=env) as two,
    ):
        servers: list[ServerProcess] = [one, two]
        leader = await _the_leader(ports, 10)
        survivor = servers[1 - leader]
        async with grpc.aio.insecure_channel(survivor.target) as channel:
            author = dataclasses.replace(instructor, channel=channel)
            killed = time.monotonic()
            os.kill(servers[leader].pid, signal.SIGKILL)
            await servers[leader].process.wait()
            updated = await courses(channel).UpdateCourse(
                courses_pb2.UpdateCourseRequest(
                    course=courses_pb2.Course(id=course.id, title="Handed Over"),
                    update_mask=field_mask_pb2.FieldMask(paths=["title"]),
                ),
                metadata=author.metadata(),
            )
            deadline = killed + 30
            while True:
                try:
                    reply = await catalog(channel).GetCourse(
                        courses_pb2.GetCourseRequest(course_id=course.id),
                        metadata=author.metadata(updated.consistency_token),
                        timeout=2,
                    )
                    break
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() in (
                        grpc.StatusCode.UNAVAILABLE,
                        grpc.StatusCode.DEADLINE_EXCEEDED,
                    ), exc
                    assert time.monotonic() < deadline, "no projector took over"
            handover_s = time.monotonic() - killed
            assert reply.course.title == "Handed Over"
            assert await _the_leader(ports[1 - leader : 2 - leader], 10) == 0
    print(f"projector hand-over after kill -9: {handover_s:.2f} s")
    assert handover_s < HANDOVER_BOUND_S


@contextlib.asynccontextmanager
async def _ferretdb(port: int, state: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """A private FerretDB (SQLite backend in `state`) listening on `port`; killed afterwards."""
    (state / "data").mkdir(parents=True, exist_ok=True)
    proc = await asyncio.create_subprocess_exec(
        str(FERRETDB),
        "--handler=sqlite",
        f"--sqlite-url=file:{state / 'data'}/",
        f"--listen-addr=127.0.0.1:{port}",
        f"--state-dir={state}",
        "--debug-addr=-",
        "--telemetry=disable",
        "--log-level=warn",
        env={**os.environ, "FERRETDB_TELEMETRY": "disable"},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                await writer.wait_closed()
                break
            except OSError:
                assert proc.returncode is None, "FerretDB exited"
                assert time.monotonic() < deadline, "FerretDB did not listen"
                await asyncio.sleep(0.1)
        yield proc
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        await proc.wait()


async def _health_becomes(target: str, status: int, within_s: float) -> float:
    """Seconds until the server's overall health is `status`."""
    started = time.monotonic()
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            with contextlib.suppress(grpc.aio.AioRpcError):
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == status:
                    return time.monotonic() - started
            assert time.monotonic() - started < within_s, f"health did not become {status}"
            await asyncio.sleep(0.1)


async def test_a_restarted_ferretdb_is_survived_without_a_restart(
    settings: Settings, tmp_path: Path
) -> None:
    if not FERRETDB.exists():
        pytest.skip(f"FerretDB binary not found at {FERRETDB}")
    port = free_port()
    url = f"mongodb://127.0.0.1:{port}/"
    serving = health_pb2.HealthCheckResponse.SERVING
    not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
    async with contextlib.AsyncExitStack() as stack:
        ferret = await stack.enter_async_context(_ferretdb(port, tmp_path))
        server = await stack.enter_async_context(
            server_process(settings, extra_env={"LEARNFLOW_MONGO_URL": url})
        )
        await _health_becomes(server.target, serving, 5)
        ferret.kill()
        await ferret.wait()
        down_s = await _health_becomes(server.target, not_serving, HEALTH_BOUND_S)
        async with _ferretdb(port, tmp_path):
            up_s = await _health_becomes(server.target, serving, HEALTH_BOUND_S)
            async with grpc.aio.insecure_channel(server.target) as channel:
                listed = await catalog(channel).ListCourses(
                    courses_pb2.ListCoursesRequest(), timeout=10
                )
            assert server.process.returncode is None
    print(f"FerretDB down: NOT_SERVING after {down_s:.2f} s; back: SERVING after {up_s:.2f} s")
    assert listed is not None


# PostgreSQL away: a command is refused UNAVAILABLE at once (connection refused), the health
# watcher reports NOT_SERVING at its next round; back: everything within one or two rounds of
# the watcher, the account listener's and the projector's 1 s retry pauses.
PG_REFUSED_BOUND_S = 2.0
PG_RECOVERY_BOUND_S = 15.0


async def _drop_read_store(mongo_url: str, name: str) -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_url)
    store = ReadStore(client, name)
    with contextlib.suppress(Exception):
        for generation in range(1, await store.active_generation() + 2):
            await client.drop_database(store.database(generation).name)
    await client.drop_database(f"{name}_meta")
    await client.close()


async def _rename(who: Caller, course_id: str, title: str) -> courses_pb2.UpdateCourseResponse:
    return await courses(who.channel).UpdateCourse(
        courses_pb2.UpdateCourseRequest(
            course=courses_pb2.Course(id=course_id, title=title),
            update_mask=field_mask_pb2.FieldMask(paths=["title"]),
        ),
        metadata=who.metadata(),
        timeout=10,
    )


async def _until_ok(call: Callable[[], Awaitable[T]], within_s: float) -> T:
    """`call()` retried while it fails UNAVAILABLE (what a client retries), for `within_s`."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            return await call()
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc
            assert time.monotonic() < deadline, f"still failing: {exc}"
            await asyncio.sleep(0.1)


async def _account_listeners(cluster: PrivatePostgres, database: str) -> int:
    """Sessions of the server listening for account changes (security/accounts.py)."""
    async with await psycopg.AsyncConnection.connect(cluster.url(database)) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
            " AND usename = 'learnflow_app' AND query = 'LISTEN learnflow_accounts'",
            (database,),
        )
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def _me(who: Caller) -> grpc.StatusCode:
    try:
        await identity_pb2_grpc.ProfileServiceStub(who.channel).GetCurrentUser(
            identity_pb2.GetCurrentUserRequest(),
            metadata=who.metadata(who.consistency_token),
            timeout=5,
        )
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("outage", ["stop", "kill"])
async def test_a_restarted_postgresql_is_survived_without_a_restart(
    settings: Settings, tmp_path: Path, outage: str
) -> None:
    """`pg_ctl stop -m fast` (sessions told and ended) or kill -9 of the postmaster (a crash:
    the sockets just close), then the same cluster restarted on the same port: one server
    process, never restarted, serves again — commands, the projector, the account listener
    and the mail sender."""
    if server_binaries() is None:
        pytest.skip("PostgreSQL server binaries not found under /usr/lib/postgresql")
    serving = health_pb2.HealthCheckResponse.SERVING
    not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
    async with contextlib.AsyncExitStack() as stack:
        cluster = await stack.enter_async_context(private_postgres())
        database = f"learnflow_{uuid.uuid4().hex[:8]}"
        await cluster.create_database(database)
        owner = cluster.url(database).replace("postgresql://", "postgresql+psycopg://", 1)
        await asyncio.to_thread(upgrade_to_head, owner)  # creates learnflow_app (0003)
        read_side = f"lffault_{uuid.uuid4().hex[:8]}"
        stack.push_async_callback(_drop_read_store, settings.mongo_url, read_side)
        smtp_port = stack.enter_context(smtp_server(tmp_path / "mail"))
        box = Mailbox(tmp_path / "mail")
        server = await stack.enter_async_context(
            server_process(
                dataclasses.replace(
                    settings,
                    postgres_url=owner.replace("://postgres@", "://learnflow_app@", 1),
                    postgres_migration_url=owner,
                    mongo_database=read_side,
                ),
                extra_env={
                    "LEARNFLOW_PROJECTOR_POLL_S": "0.2",
                    "LEARNFLOW_BCRYPT_ROUNDS": "4",
                    "LEARNFLOW_SMTP_HOST": "127.0.0.1",
                    "LEARNFLOW_SMTP_PORT": str(smtp_port),
                    "LEARNFLOW_SMTP_SECURITY": "none",
                    "LEARNFLOW_MAIL_POLL_S": "0.1",
                    "LEARNFLOW_MAIL_BACKOFF_S": "0.2",
                    "LEARNFLOW_MAIL_BACKOFF_MAX_S": "1",
                    "LEARNFLOW_LOG_LEVEL": "INFO",
                },
                log_path=tmp_path / "server.log",
            )
        )
        channel = await stack.enter_async_context(grpc.aio.insecure_channel(server.target))
        admin = await Caller.with_role(channel, owner, "admin")
        instructor = await Caller.with_role(channel, owner, "instructor")
        course, _ = await published_course(instructor)
        before = await _rename(instructor, course.id, "Before The Outage")
        await catalog(channel).GetCourse(  # projected, hence listed in the public catalog
            courses_pb2.GetCourseRequest(course_id=course.id),
            metadata=instructor.metadata(before.consistency_token),
            timeout=10,
        )
        assert await _account_listeners(cluster, database) == 1

        if outage == "stop":
            await cluster.stop_fast()
        else:
            await cluster.kill()
        down_s = await _health_becomes(server.target, not_serving, HEALTH_BOUND_S)
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _rename(instructor, course.id, "During The Outage")
        refused_s = time.monotonic() - started
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, refused.value
        assert "PostgreSQL" in (refused.value.details() or ""), refused.value.details()
        # The public catalog is read from MongoDB alone: it stays up.
        listed = await catalog(channel).ListCourses(courses_pb2.ListCoursesRequest(), timeout=5)
        assert course.id in [c.id for c in listed.courses]

        await cluster.start()
        restarted = time.monotonic()
        up_s = await _health_becomes(server.target, serving, PG_RECOVERY_BOUND_S)
        updated = await _until_ok(
            lambda: _rename(instructor, course.id, "After The Outage"), PG_RECOVERY_BOUND_S
        )
        command_s = time.monotonic() - restarted
        # The projector is back: the write reads back with its consistency token.
        reply = await catalog(channel).GetCourse(
            courses_pb2.GetCourseRequest(course_id=course.id),
            metadata=instructor.metadata(updated.consistency_token),
            timeout=10,
        )
        assert reply.course.title == "After The Outage"
        projected_s = time.monotonic() - restarted
        # The account listener reconnected, and a user disabled now is refused at once.
        while await _account_listeners(cluster, database) != 1:
            assert time.monotonic() - restarted < PG_RECOVERY_BOUND_S, "no account listener"
            await asyncio.sleep(0.1)
        listening_s = time.monotonic() - restarted
        learner = await Caller.register(channel)
        assert await _me(learner) == grpc.StatusCode.OK
        await identity_pb2_grpc.IdentityServiceStub(channel).SetUserDisabled(
            identity_pb2.SetUserDisabledRequest(user_id=learner.user_id, disabled=True),
            metadata=admin.metadata(),
        )
        disabled = time.monotonic()
        while await _me(learner) == grpc.StatusCode.OK:
            assert time.monotonic() - disabled < 5, "the disabled user is still served"
            await asyncio.sleep(0.02)
        refused_after_disable_s = time.monotonic() - disabled
        # The mail sender is back: the learner's verification mail, queued after the restart.
        await wait_for_mail(box, learner.user.email, timeout_s=PG_RECOVERY_BOUND_S)
        mailed_s = time.monotonic() - restarted
        assert server.process.returncode is None  # the same process all along
        os.kill(server.pid, 0)  # and it is alive
        log_text = await asyncio.to_thread((tmp_path / "server.log").read_text, errors="replace")
    print(
        f"PostgreSQL {outage}: NOT_SERVING after {down_s:.2f} s, a command refused UNAVAILABLE"
        f" in {refused_s:.3f} s; restarted: SERVING after {up_s:.2f} s, a command after"
        f" {command_s:.2f} s, read back with its token after {projected_s:.2f} s, account"
        f" listener after {listening_s:.2f} s, mail after {mailed_s:.2f} s; disabled user"
        f" refused in {refused_after_disable_s:.3f} s"
    )
    assert refused_s < PG_REFUSED_BOUND_S
    assert refused_after_disable_s < 1.0
    assert max(up_s, command_s, projected_s, listening_s, mailed_s) < PG_RECOVERY_BOUND_S
    assert "unhandled error" not in log_text, "a call failed INTERNAL during the outage"
