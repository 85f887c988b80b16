"""Issue 13's read-path and hot-row measurements, with their baselines, in one run.

    python bench/read_path.py                          # 2 rounds x 8 s, 50 in flight
    python bench/read_path.py --rounds 1 --duration 5 --profile 10 --json out.json
    python bench/read_path.py --only hot --rounds 3      # the hot row (goal 4) alone

Starts everything it measures as separate processes on free loopback ports, on a fresh
PostgreSQL database and a fresh MongoDB (FerretDB) database of its own, dropped at the end:

- the floor (bench/baselines/floor_grpc.py): grpc.aio, constant GetCourse/GetLesson replies;
- LearnFlow (`python -m learnflow serve`, rate limits lifted) with the demo data and the demo
  student enrolled in the first catalog course;
- the gateway (`python -m gateway`) in front of it;
- the FastAPI baseline (bench/baselines/fastapi_read.py under uvicorn, 1 worker) reading the
  same read-model documents;
- for the hot row, LearnFlow's UpdateCourse (ghz) against bench/baselines/hot_row_sql.py.

Each round runs every read measurement once, at the same concurrency and duration (ghz for
gRPC, wrk for HTTP); the hot row's rounds come after all of them (their writes leave the
databases busy for a while). The report gives medians over the rounds and the goal ratios of
issue 13, each started process's CPU per request in each measurement (FerretDB and
PostgreSQL, shared by all, are not counted), and the processes' RSS after the run. See
README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gateway_overhead import (
    STATE_BIN,
    WRK_REPORT,
    Result,
    ensure_wrk,
    free_port,
    protoset,
    say,
    wait_grpc,
    wait_http,
)

ROOT = Path(__file__).resolve().parent.parent
BASELINES = Path(__file__).resolve().parent / "baselines"
# Pinned: the figures of one run should be comparable with the next.
GHZ_MODULE = "github.com/bojand/ghz/cmd/ghz@v0.120.0"
STUDENT = ("student@learnflow.dev", "learn-demo-pass")
INSTRUCTOR = ("instructor@learnflow.dev", "teach-demo-pass")
# Bench-only: the production budgets (600 reads/minute per principal) would answer 429s.
UNLIMITED = "1000000000/minute"
PG_ADMIN = os.environ.get(
    "LEARNFLOW_POSTGRES_URL", "postgresql://postgres@127.0.0.1:55432/postgres"
)
# FerretDB with the PostgreSQL backend (57017, SQLite, belongs to the test suites).
MONGO_URL = os.environ.get("LEARNFLOW_BENCH_MONGO_URL", "mongodb://127.0.0.1:57018/")

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
GOALS = (
    # (label, numerator row, denominator row, target)
    ("gRPC GetCourse / floor", "grpc_course", "floor_course", 0.7),
    ("gRPC GetLesson / floor", "grpc_lesson", "floor_lesson", 0.7),
    ("gateway course / FastAPI", "gateway_course", "fastapi_course", 1.5),
    ("gateway lesson / FastAPI", "gateway_lesson", "fastapi_lesson", 1.5),
    ("gateway course / LearnFlow gRPC", "gateway_course", "grpc_course", 0.8),
    ("gateway lesson / LearnFlow gRPC", "gateway_lesson", "grpc_lesson", 0.8),
    ("UpdateCourse hot row / SQL", "update_hot", "sql_hot", 0.5),
)
# `--only`: which measurements a round runs (the servers all start either way).
HOT_KEYS = frozenset({"update_hot", "sql_hot"})


@dataclass(frozen=True)
class Load:
    """One measured thing: a gRPC call for ghz, or a URL for wrk, or the SQL baseline."""

    key: str
    label: str
    tool: str  # ghz | wrk | sql
    target: str = ""  # host:port for ghz, base URL for wrk
    call: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    path: str = ""
    token: str = ""
    concurrency: int = 0  # 0: --concurrency


@dataclass
class World:
    """What the bench started and learned; filled in by `servers()` and `prepare()`."""

    env: dict[str, str]
    pg_owner_url: str = ""
    mongo_database: str = ""
    generation: int = 1
    pids: dict[str, int] = field(default_factory=dict)
    grpc: str = ""
    floor: str = ""
    gateway: str = ""
    fastapi: str = ""
    course_id: str = ""
    lesson_id: str = ""
    hot_course_id: str = ""
    hot_owner_id: str = ""
    student_token: str = ""
    instructor_token: str = ""


# -- tools -----------------------------------------------------------------------------------


def ensure_ghz() -> str:
    pinned = STATE_BIN / "ghz"
    if pinned.exists():
        return str(pinned)
    found = shutil.which("ghz")
    if found:
        return found
    say(f"installing ghz (go install {GHZ_MODULE})")
    STATE_BIN.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["go", "install", GHZ_MODULE], check=True, env={**os.environ, "GOBIN": str(STATE_BIN)}
    )
    return str(pinned)


def _run(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench: {command[0]} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return done.stdout


def ghz_command(
    ghz: str, load: Load, concurrency: int, seconds: float, descriptors: Path
) -> list[str]:
    command = [
        ghz,
        "--insecure",
        f"--protoset={descriptors}",
        f"--call={load.call}",
        f"--data={json.dumps(load.data)}",
        f"--concurrency={concurrency}",
        f"--duration={seconds:g}s",
        "--timeout=10s",
        "--format=json",
    ]
    if load.token:
        command.append(f"--metadata={json.dumps({'authorization': f'Bearer {load.token}'})}")
    return [*command, load.target]


def run_ghz(ghz: str, load: Load, concurrency: int, seconds: float, descriptors: Path) -> Result:
    report = json.loads(_run(ghz_command(ghz, load, concurrency, seconds, descriptors)))
    percentiles = {p["percentage"]: p["latency"] / 1e6 for p in report["latencyDistribution"]}
    codes: dict[str, int] = report.get("statusCodeDistribution", {})
    errors: dict[str, int] = report.get("errorDistribution") or {}
    # A duration-bound run ends with the calls in flight cut off ("transport is closing" /
    # canceled): the end of the run, not failures of the server.
    ends = ("transport is closing", "Canceled", "use of closed network connection")
    cut_off = sum(n for e, n in errors.items() if any(end in e for end in ends))
    failed = sum(n for code, n in codes.items() if code != "OK") - min(cut_off, concurrency)
    if failed > 0:
        say(f"{load.key}: {failed} failed: {json.dumps(errors)[:300]}")
    ok = codes.get("OK", report["count"])
    return Result(
        rps=ok / (report["total"] / 1e9) if report.get("total") else report["rps"],
        p50_ms=percentiles[50],
        p90_ms=percentiles[90],
        p99_ms=percentiles[99],
        requests=report["count"],
        failures=max(0, failed),
    )


def run_wrk(wrk: str, load: Load, concurrency: int, seconds: float, threads: int) -> Result:
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_REPORT)
        script.flush()
        command = [
            wrk,
            f"--threads={min(threads, concurrency)}",
            f"--connections={concurrency}",
            f"--duration={max(1, round(seconds))}s",
            "--timeout=10s",
            f"--script={script.name}",
        ]
        if load.token:
            command.append("--header=Authorization: Bearer " + load.token)
        out = _run([*command, load.target + load.path])
    report = json.loads(out.strip().splitlines()[-1])
    failures = report["non2xx"] + report["errors"]
    if failures:
        say(f"{load.key}: {failures} failed (non-2xx or socket errors)")
    return Result(
        rps=(report["requests"] - failures) / (report["duration_us"] / 1e6),
        p50_ms=report["p50"] / 1e3,
        p90_ms=report["p90"] / 1e3,
        p99_ms=report["p99"] / 1e3,
        requests=report["requests"],
        failures=failures,
    )


def run_sql(world: World, clients: int, seconds: float) -> Result:
    out = _run(
        [
            sys.executable,
            str(BASELINES / "hot_row_sql.py"),
            f"--url={world.pg_owner_url}",
            f"--course-id={world.hot_course_id}",
            f"--actor-id={world.hot_owner_id}",
            f"--clients={clients}",
            f"--duration={seconds:g}",
        ]
    )
    report = json.loads(out.strip().splitlines()[-1])
    return Result(
        rps=report["rps"],
        p50_ms=report["p50_ms"],
        p90_ms=report["p90_ms"],
        p99_ms=report["p99_ms"],
        requests=report["requests"],
        failures=report["failures"],
    )


# -- servers ---------------------------------------------------------------------------------


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


def rss_kib(pid: int) -> int:
    """VmRSS of a live process, in KiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kib(pid: int) -> int:
    """VmRSS of a process and all its descendants (a `--workers` supervisor's workers)."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += rss_kib(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
    return total


def serve_supports_workers(env: dict[str, str]) -> bool:
    done = subprocess.run(
        [sys.executable, "-m", "learnflow", "serve", "--help"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    return "--workers" in done.stdout


class Processes:
    """Subprocesses the bench started, stopped in reverse order."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, command: list[str], env: dict[str, str] | None = None) -> int:
        log = (self.logs / f"{name}.log").open("wb")
        process = subprocess.Popen(
            command, env=env or self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        self.started.append((name, process))
        return process.pid

    def alive(self) -> None:
        for name, process in self.started:
            if process.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-2000:]
                raise SystemExit(f"bench: {name} exited ({process.returncode}):\n{tail}")

    def stop(self) -> None:
        for _, process in reversed(self.started):
            if process.poll() is None:
                process.terminate()
        for _, process in self.started:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def databases() -> Iterator[tuple[str, str, str]]:
    """A fresh PostgreSQL database (migrated, as the owner) and a fresh MongoDB name; both
    dropped at the end. Yields (owner URL, learnflow_app URL, mongo database name)."""
    import psycopg
    from pymongo import MongoClient

    from learnflow.migrations import upgrade_to_head

    suffix = secrets.token_hex(4)
    name, mongo_name = f"learnflow_bench_{suffix}", f"lfbench_{suffix}"
    admin = _with_database(PG_ADMIN, "postgres")
    owner = _with_database(PG_ADMIN, name)
    scheme, _, rest = owner.partition("://")
    app = f"{scheme}://learnflow_app@{rest.rpartition('@')[2]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        say(f"PostgreSQL database {name} (migrations as the owner), MongoDB {mongo_name}")
        upgrade_to_head(owner.replace("postgresql://", "postgresql+psycopg://", 1))
        yield owner, app, mongo_name
    finally:
        client: MongoClient[dict[str, Any]] = MongoClient(MONGO_URL)
        try:
            active = client[f"{mongo_name}_meta"]["generations"].find_one({"_id": "active"})
            last = int(active["generation"]) if active else 1
            for generation in range(1, last + 2):
                client.drop_database(f"{mongo_name}_g{generation}")
            client.drop_database(f"{mongo_name}_meta")
        finally:
            client.close()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        say(f"dropped {name} and {mongo_name}_*")


def learnflow_env(
    owner: str, app: str, mongo_name: str, state: Path, log_level: str
) -> dict[str, str]:
    grpc_port = free_port()
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LEARNFLOW_POSTGRES_URL": app,
        "LEARNFLOW_POSTGRES_MIGRATION_URL": owner,
        "LEARNFLOW_MONGO_URL": MONGO_URL,
        "LEARNFLOW_MONGO_DATABASE": mongo_name,
        "LEARNFLOW_GRPC_LISTEN": f"127.0.0.1:{grpc_port}",
        # Its own port: the default (9464) may be taken by another server on the machine.
        "LEARNFLOW_METRICS_LISTEN": f"127.0.0.1:{free_port()}",
        "LEARNFLOW_STATE_DIR": str(state),
        "LEARNFLOW_LOG_LEVEL": log_level,
        "LEARNFLOW_BCRYPT_ROUNDS": "4",
        "LEARNFLOW_ACCESS_TOKEN_TTL_S": "7200",
        "LEARNFLOW_RATE_LIMIT_READ": UNLIMITED,
        "LEARNFLOW_RATE_LIMIT_WRITE": UNLIMITED,
        "LEARNFLOW_RATE_LIMIT_AUTH": UNLIMITED,
        "LEARNFLOW_RATE_LIMIT_LOGIN_PER_ACCOUNT": UNLIMITED,
        "LEARNFLOW_RATE_LIMIT_INFRA": UNLIMITED,
        "LEARNFLOW_GATEWAY_GRPC_TARGET": f"127.0.0.1:{grpc_port}",
        "LEARNFLOW_GATEWAY_PORT": str(free_port()),
        "LEARNFLOW_GATEWAY_RELOAD_INTERVAL_S": "0",
    }


def active_generation(mongo_name: str) -> int:
    from pymongo import MongoClient

    client: MongoClient[dict[str, Any]] = MongoClient(MONGO_URL)
    try:
        doc = client[f"{mongo_name}_meta"]["generations"].find_one({"_id": "active"})
    finally:
        client.close()
    return int(doc["generation"]) if doc else 1


def prepare(world: World) -> None:
    """Log in, pick the course and lesson, enroll the student and wait until the read model
    lets them read the lesson."""
    import grpc

    from learnflow.v1 import (
        courses_pb2,
        courses_pb2_grpc,
        identity_pb2,
        identity_pb2_grpc,
        learning_pb2,
        learning_pb2_grpc,
    )

    with grpc.insecure_channel(world.grpc) as channel:
        identity = identity_pb2_grpc.IdentityServiceStub(channel)
        catalog = courses_pb2_grpc.CatalogServiceStub(channel)
        sessions = {}
        for email, password in (STUDENT, INSTRUCTOR):
            sessions[email] = identity.CreateSession(
                identity_pb2.CreateSessionRequest(email=email, password=password), timeout=10
            ).access_token
        world.student_token, world.instructor_token = sessions[STUDENT[0]], sessions[INSTRUCTOR[0]]
        listing = catalog.ListCourses(courses_pb2.ListCoursesRequest(page_size=2), timeout=10)
        if not listing.courses:
            raise SystemExit("bench: the catalog is empty after `learnflow demo-data`")
        world.course_id = listing.courses[0].id
        course = catalog.GetCourse(courses_pb2.GetCourseRequest(course_id=world.course_id))
        if not course.lessons:
            raise SystemExit(f"bench: course {world.course_id} has no lessons")
        world.lesson_id = course.lessons[0].id
        # The hot row: another course if there is one, so the read rows stay still.
        hot = listing.courses[-1]
        world.hot_course_id, world.hot_owner_id = hot.id, hot.owner_id
        student = (("authorization", f"Bearer {world.student_token}"),)
        learning_pb2_grpc.LearningServiceStub(channel).EnrollInCourse(
            learning_pb2.EnrollInCourseRequest(course_id=world.course_id, request_id="bench"),
            metadata=student,
            timeout=10,
        )
        deadline = time.monotonic() + 30
        request = courses_pb2.GetLessonRequest(course_id=world.course_id, lesson_id=world.lesson_id)
        while True:
            try:
                catalog.GetLesson(request, metadata=student, timeout=10)
                break
            except grpc.RpcError as exc:
                if time.monotonic() > deadline:
                    raise SystemExit(f"bench: the student cannot read the lesson: {exc}") from exc
                time.sleep(0.2)


def same_replies(world: World) -> list[str]:
    """The floor must answer exactly what LearnFlow answers (else the ratio compares unlike
    things); returns the differences."""
    import grpc

    from learnflow.v1 import courses_pb2, courses_pb2_grpc

    student = (("authorization", f"Bearer {world.student_token}"),)
    course_rq = courses_pb2.GetCourseRequest(course_id=world.course_id)
    lesson_rq = courses_pb2.GetLessonRequest(course_id=world.course_id, lesson_id=world.lesson_id)
    answers: list[tuple[Any, Any]] = []
    for target in (world.grpc, world.floor):
        with grpc.insecure_channel(target) as channel:
            stub = courses_pb2_grpc.CatalogServiceStub(channel)
            answers.append(
                (
                    stub.GetCourse(course_rq, timeout=10),
                    stub.GetLesson(lesson_rq, metadata=student, timeout=10),
                )
            )
    (lf_course, lf_lesson), (floor_course, floor_lesson) = answers
    problems = []
    if lf_course != floor_course:
        problems.append("GetCourse reply differs between LearnFlow and the floor")
    if lf_lesson != floor_lesson:
        problems.append("GetLesson reply differs between LearnFlow and the floor")
    return problems


def wait_projected(env: dict[str, str], within: float = 120.0) -> float:
    """Until the projector has caught up with the event log (the hot-row runs leave it
    behind); returns the seconds waited."""
    from learnflow.projections import maintenance
    from learnflow.settings import Settings

    settings = Settings.from_env(env)
    began = time.monotonic()
    while time.monotonic() - began < within:
        state = asyncio.run(maintenance.status(settings))
        if state.checkpoint >= state.head:
            return time.monotonic() - began
        time.sleep(0.5)
    say(f"the projector is still behind after {within:.0f}s")
    return time.monotonic() - began


@contextlib.contextmanager
def servers(args: argparse.Namespace, logs: Path) -> Iterator[tuple[World, Processes]]:
    with databases() as (owner, app, mongo_name):
        state = Path(tempfile.mkdtemp(prefix="learnflow-bench-state-"))
        env = learnflow_env(owner, app, mongo_name, state, args.log_level)
        world = World(env=env, pg_owner_url=owner, mongo_database=mongo_name)
        python = sys.executable
        say("demo data (learnflow demo-data)")
        subprocess.run(
            [python, "-m", "learnflow", "demo-data"],
            check=True,
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        processes = Processes(env, logs)
        try:
            world.grpc = env["LEARNFLOW_GRPC_LISTEN"]
            world.pids["learnflow"] = processes.start(
                "learnflow", [python, "-m", "learnflow", "serve"]
            )
            wait_grpc(world.grpc, 60)
            wait_projected(env)  # the demo data's events, before reading the catalog
            prepare(world)
            wait_projected(env)
            world.generation = active_generation(mongo_name)
            read_models = f"{mongo_name}_g{world.generation}"

            world.gateway = f"http://127.0.0.1:{env['LEARNFLOW_GATEWAY_PORT']}"
            world.pids["gateway"] = processes.start("gateway", [python, "-m", "gateway"])

            world.floor = f"127.0.0.1:{free_port()}"
            world.pids["floor"] = processes.start(
                "floor",
                [
                    python,
                    str(BASELINES / "floor_grpc.py"),
                    f"--listen={world.floor}",
                    f"--mongo-url={MONGO_URL}",
                    f"--database={read_models}",
                    f"--course-id={world.course_id}",
                    f"--lesson-id={world.lesson_id}",
                ],
            )
            fastapi_port = free_port()
            world.fastapi = f"http://127.0.0.1:{fastapi_port}"
            world.pids["fastapi"] = processes.start(
                "fastapi",
                [
                    python,
                    "-m",
                    "uvicorn",
                    "--app-dir",
                    str(BASELINES),
                    "fastapi_read:app",
                    "--host=127.0.0.1",
                    f"--port={fastapi_port}",
                    "--workers=1",
                    "--no-access-log",
                    "--log-level=warning",
                ],
                env={**env, "BENCH_MONGO_URL": MONGO_URL, "BENCH_MONGO_DATABASE": read_models},
            )
            wait_http(f"{world.gateway}/readyz", 60)
            wait_http(f"{world.fastapi}/v1/courses/{world.course_id}", 60)
            wait_grpc_floor(world.floor, processes)
            say(
                "up: "
                + ", ".join(f"{name} pid {pid}" for name, pid in world.pids.items())
                + f"; read models {read_models}"
            )
            yield world, processes
        finally:
            processes.stop()
            shutil.rmtree(state, ignore_errors=True)


def wait_grpc_floor(target: str, processes: Processes, within: float = 60) -> None:
    """The floor has no health service: wait until its port accepts a GetCourse."""
    import grpc

    from learnflow.v1 import courses_pb2, courses_pb2_grpc

    deadline = time.monotonic() + within
    with grpc.insecure_channel(target) as channel:
        stub = courses_pb2_grpc.CatalogServiceStub(channel)
        while True:
            try:
                stub.GetCourse(courses_pb2.GetCourseRequest(), timeout=2)
                return
            except grpc.RpcError:
                processes.alive()
                if time.monotonic() > deadline:
                    raise SystemExit(f"bench: the floor on {target} does not answer") from None
                time.sleep(0.2)


# -- the run ---------------------------------------------------------------------------------


def loads(world: World, hot_clients: int) -> list[Load]:
    course = {"course_id": world.course_id}
    lesson = {"course_id": world.course_id, "lesson_id": world.lesson_id}
    course_path = f"/v1/courses/{world.course_id}"
    lesson_path = f"{course_path}/lessons/{world.lesson_id}"
    get_course, get_lesson = (
        "learnflow.v1.CatalogService.GetCourse",
        "learnflow.v1.CatalogService.GetLesson",
    )
    tok = world.student_token
    return [
        Load(
            "floor_course",
            "floor: grpc.aio constant GetCourse",
            "ghz",
            world.floor,
            get_course,
            course,
        ),
        Load(
            "grpc_course",
            "LearnFlow gRPC GetCourse (anonymous)",
            "ghz",
            world.grpc,
            get_course,
            course,
        ),
        Load(
            "floor_lesson",
            "floor: grpc.aio constant GetLesson",
            "ghz",
            world.floor,
            get_lesson,
            lesson,
        ),
        Load(
            "grpc_lesson",
            "LearnFlow gRPC GetLesson (enrolled student, bearer)",
            "ghz",
            world.grpc,
            get_lesson,
            lesson,
            token=tok,
        ),
        Load(
            "gateway_course", "gateway GET /v1/courses/{id}", "wrk", world.gateway, path=course_path
        ),
        Load(
            "gateway_lesson",
            "gateway GET /v1/courses/{id}/lessons/{id} (bearer)",
            "wrk",
            world.gateway,
            path=lesson_path,
            token=tok,
        ),
        Load(
            "fastapi_course",
            "FastAPI + PyMongo find_one course",
            "wrk",
            world.fastapi,
            path=course_path,
        ),
        Load(
            "fastapi_lesson",
            "FastAPI + PyMongo find_one lesson",
            "wrk",
            world.fastapi,
            path=lesson_path,
        ),
        Load(
            "update_hot",
            f"LearnFlow gRPC UpdateCourse, one course, {hot_clients} clients",
            "ghz",
            world.grpc,
            "learnflow.v1.CourseService.UpdateCourse",
            {
                "course": {"id": world.hot_course_id, "title": "Hot row {{.RequestNumber}}"},
                "update_mask": {"paths": ["title"]},
            },
            token=world.instructor_token,
            concurrency=hot_clients,
        ),
        Load(
            "sql_hot",
            f"SQL baseline (psycopg), one course, {hot_clients} connections",
            "sql",
            concurrency=hot_clients,
        ),
    ]


@dataclass
class Tools:
    ghz: str
    wrk: str
    descriptors: Path
    wrk_threads: int


def measure(tools: Tools, world: World, load: Load, concurrency: int, seconds: float) -> Result:
    n = load.concurrency or concurrency
    if load.tool == "ghz":
        return run_ghz(tools.ghz, load, n, seconds, tools.descriptors)
    if load.tool == "wrk":
        return run_wrk(tools.wrk, load, n, seconds, tools.wrk_threads)
    return run_sql(world, n, seconds)


def profile(tools: Tools, world: World, load: Load, args: argparse.Namespace, out: Path) -> str:
    """py-spy on the LearnFlow server for `--profile` seconds under `load`; the top 10
    functions by own (self) samples and by inclusive samples."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    n = load.concurrency or args.concurrency
    command = ghz_command(tools.ghz, load, n, args.profile + 4, tools.descriptors)
    raw = out / "py-spy.txt"
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as ghz:
        time.sleep(2)
        spy = subprocess.run(
            [
                py_spy,
                "record",
                f"--pid={world.pids['learnflow']}",
                f"--duration={args.profile}",
                "--rate=200",
                "--gil",  # samples of the thread holding the GIL: where Python's CPU goes
                "--format=raw",
                f"--output={raw}",
            ],
            capture_output=True,
            text=True,
        )
        ghz.wait()
    if spy.returncode != 0 or not raw.exists():
        return f"py-spy failed ({spy.returncode}): {spy.stderr.strip()[-500:]}"
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack:
            continue
        n = int(samples)
        total += n
        frames = [_function(f) for f in stack.split(";")]
        own[frames[-1]] += n
        for name in set(frames):
            inclusive[name] += n
    lines = [
        f"py-spy --gil, {args.profile} s at 200 Hz on the LearnFlow server during {load.call}"
        f" ({total} samples holding the GIL)",
        "",
        "| # | own % | function (self time) | | incl. % | function (inclusive) |",
        "|---|---|---|---|---|---|",
    ]
    # Inclusive: skip the frames every sample passes through (runner, event loop, threads).
    busy = [
        (f, c)
        for f, c in inclusive.most_common()
        if not any(part in f for part in PLUMBING) and c < 0.9 * total
    ]
    for i, ((name, count), (iname, icount)) in enumerate(
        zip(own.most_common(10), busy[:10], strict=False), start=1
    ):
        lines.append(
            f"| {i} | {100 * count / total:.1f} | `{name}` | | {100 * icount / total:.1f} "
            f"| `{iname}` |"
        )
    return "\n".join(lines)


# Frames of the process's skeleton, left out of the inclusive ranking.
PLUMBING = (
    "(asyncio/",
    "runpy>",
    "(threading.py)",
    "(futures/thread.py)",
    "(learnflow/__main__.py)",
    "(learnflow/cli.py)",
)


def _function(frame: str) -> str:
    """`func (path/to/module.py:123)` -> `func (module.py)`."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if len(parts) >= 2 else path
    return f"{name} ({short})"


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, all its threads, so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_per_request(
    before: dict[str, float], pids: dict[str, int], requests: int
) -> dict[str, float]:
    """Each process's CPU since `before`, in µs per request of the measurement."""
    return {
        name: (cpu_seconds(pid) - before[name]) * 1e6 / max(requests, 1)
        for name, pid in pids.items()
    }


def median(results: list[Result]) -> Result:
    def mid(name: str) -> float:
        return float(statistics.median(getattr(r, name) for r in results))

    return Result(
        rps=mid("rps"),
        p50_ms=mid("p50_ms"),
        p90_ms=mid("p90_ms"),
        p99_ms=mid("p99_ms"),
        requests=int(mid("requests")),
        failures=sum(r.failures for r in results),
    )


def report(
    args: argparse.Namespace,
    all_loads: list[Load],
    medians: dict[str, Result],
    rss: dict[str, int],
    notes: list[str],
    cpu: dict[str, dict[str, float]] | None = None,
) -> str:
    lines = [
        f"{args.concurrency} in flight (hot row: {args.hot_clients}), {args.duration:g} s per"
        f" run, median of {args.rounds} round(s); load average at start {notes[0]}",
        "",
        "| measurement | tool | req/s | p50 ms | p99 ms | failed |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for load in all_loads:
        r = medians[load.key]
        tool = {"ghz": "ghz", "wrk": "wrk", "sql": "psycopg"}[load.tool]
        lines.append(
            f"| {load.label} | {tool} | {r.rps:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f}"
            f" | {r.failures} |"
        )
    lines += ["", "| goal (issue 13) | ratio | target | met |", "|---|---:|---:|---|"]
    for label, num, den, target in GOALS:
        if num not in medians or den not in medians:
            continue  # not measured in this run (`--only`)
        ratio = medians[num].rps / medians[den].rps if medians[den].rps else 0.0
        lines.append(
            f"| {label} | {ratio:.2f}x | ≥ {target:g}x | {'yes' if ratio >= target else 'no'} |"
        )
    if cpu:
        names = sorted({name for spent in cpu.values() for name in spent})
        lines += [
            "",
            "CPU µs per request, median of the rounds (a process's CPU during the run / the"
            " run's requests; FerretDB and PostgreSQL not included):",
            "",
            "| measurement | " + " | ".join(names) + " |",
            "|---|" + "---:|" * len(names),
        ]
        for load in all_loads:
            if load.key in cpu:
                spent = cpu[load.key]
                cells = " | ".join(
                    f"{spent[name]:,.0f}" if spent.get(name, 0) >= 5 else "·" for name in names
                )
                lines.append(f"| {load.label} | {cells} |")
    lines += ["", "| process | VmRSS after the run |", "|---|---:|"]
    for name, kib in rss.items():
        lines.append(f"| {name} | {kib / 1024:.0f} MiB |")
    lines += ["", *(f"- {note}" for note in notes[1:])]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=8, help="seconds per measurement")
    parser.add_argument("--concurrency", type=int, default=50, help="calls in flight (reads)")
    parser.add_argument("--hot-clients", type=int, default=20, help="UpdateCourse clients")
    parser.add_argument("--warmup", type=float, default=2, help="seconds per read, once")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument(
        "--log-level", default="INFO", help="LearnFlow's (INFO: production's access log)"
    )
    parser.add_argument(
        "--workers", type=int, default=0, help="also run `learnflow serve --workers N`"
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        help="py-spy the server this many s under GetCourse (UpdateCourse with --only hot)",
    )
    parser.add_argument(
        "--only",
        choices=("all", "reads", "hot"),
        default="all",
        help="run only the reads (goals 1, 2) or only the hot row (goal 4); default: all",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    load_avg = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    notes = [load_avg]
    say(f"load average {load_avg} on {os.cpu_count()} CPUs")
    ghz, wrk = ensure_ghz(), ensure_wrk()
    work = Path(tempfile.mkdtemp(prefix="learnflow-read-path-"))
    tools = Tools(ghz, wrk, protoset(work), args.wrk_threads)
    runs: dict[str, list[Result]] = collections.defaultdict(list)
    # Per measurement and round: each started process's CPU µs per request (where the time
    # goes; FerretDB and PostgreSQL, shared by everything, are not among them).
    cpu: dict[str, list[dict[str, float]]] = collections.defaultdict(list)
    rss: dict[str, int] = {}
    spy = ""
    try:
        with servers(args, work) as (world, processes):
            problems = same_replies(world)
            for problem in problems:
                say(problem)
            notes.append(
                "floor replies: identical to LearnFlow's (GetCourse, GetLesson)"
                if not problems
                else "; ".join(problems)
            )
            all_loads = [
                load
                for load in loads(world, args.hot_clients)
                if args.only == "all" or (load.key in HOT_KEYS) == (args.only == "hot")
            ]
            if args.warmup:
                say("warming up")
                for load in all_loads:
                    if load.tool != "sql" and load.key != "update_hot":
                        measure(tools, world, load, args.concurrency, args.warmup)
            # Reads first, every round, then the hot row's rounds: the hot-row runs leave
            # PostgreSQL and the read store busy for a while (events to project, vacuum),
            # which took up to 40 % off whatever ran next (the floor, when rounds alternated).
            reads = [load for load in all_loads if load.key not in HOT_KEYS]
            hot = [load for load in all_loads if load.key in HOT_KEYS]
            settle: list[float] = []
            for phase in (reads, hot):
                for i in range(args.rounds if phase else 0):
                    for load in phase:
                        processes.alive()
                        before = {name: cpu_seconds(pid) for name, pid in world.pids.items()}
                        result = measure(tools, world, load, args.concurrency, args.duration)
                        runs[load.key].append(result)
                        cpu[load.key].append(cpu_per_request(before, world.pids, result.requests))
                        say(
                            f"round {i + 1}: {load.key:<15} {result.rps:>8.0f}/s"
                            f"  p50 {result.p50_ms:.1f} ms  p99 {result.p99_ms:.1f} ms"
                            f"  failed {result.failures}"
                        )
                    if phase is hot:
                        settle.append(wait_projected(world.env))
                if phase is reads and reads:
                    if args.profile and args.only != "hot":
                        say(f"py-spy for {args.profile} s under GetCourse load")
                        spy = profile(tools, world, reads[1], args, work)
                    if not serve_supports_workers(world.env):
                        notes.append(
                            "`learnflow serve --workers` does not exist yet: 1 vs N workers"
                            " skipped"
                            + (f" (asked: --workers {args.workers})" if args.workers else "")
                        )
                    elif args.workers:
                        notes.extend(
                            measure_workers(tools, world, all_loads, args, processes, runs)
                        )
            if settle:
                notes.append(
                    "projector catch-up after each round's hot-row runs: "
                    + ", ".join(f"{s:.1f} s" for s in settle)
                )
            if args.profile and args.only == "hot":
                say(f"py-spy for {args.profile} s under UpdateCourse load")
                spy = profile(tools, world, hot[0], args, work)
            for name, pid in world.pids.items():
                rss[name] = rss_kib(pid)
        notes.append(f"end load average {'{:.2f} {:.2f} {:.2f}'.format(*os.getloadavg())}")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    medians = {key: median(results) for key, results in runs.items()}
    cpu_medians = {
        key: {name: statistics.median(r[name] for r in rounds) for name in rounds[0]}
        for key, rounds in cpu.items()
    }
    print(report(args, all_loads, medians, rss, notes, cpu_medians))
    if spy:
        print()
        print(spy)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "args": {k: str(v) for k, v in vars(args).items()},
                    "load_average_start": load_avg,
                    "median": {k: asdict(v) for k, v in medians.items()},
                    "rounds": {k: [asdict(r) for r in v] for k, v in runs.items()},
                    "rss_kib": rss,
                    "cpu_us_per_request": cpu_medians,
                    "notes": notes,
                },
                indent=2,
            )
        )


def free_port_run(count: int, attempts: int = 50) -> int:
    """A loopback port such that it and the `count - 1` after it are free now: one free port
    was not enough for `serve --workers N`'s metrics (worker i listens on port + i), and a
    worker whose port was taken stopped the server (1 start in 6 here)."""
    for _ in range(attempts):
        base = free_port()
        with contextlib.ExitStack() as held:
            try:
                for offset in range(count):
                    sock = held.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", base + offset))
            except OSError:
                continue
        return base
    raise RuntimeError(f"no run of {count} free loopback ports in {attempts} tries")


def measure_workers(
    tools: Tools,
    world: World,
    all_loads: list[Load],
    args: argparse.Namespace,
    processes: Processes,
    runs: dict[str, list[Result]],
) -> list[str]:
    """`learnflow serve --workers N` on its own port: the gRPC reads again (a figure, not a
    gate: the load tools share the cores). Only when the option exists."""
    port = free_port()
    # Metrics of its own (worker i listens on port + i): the 1-worker server holds world.env's.
    env = {
        **world.env,
        "LEARNFLOW_GRPC_LISTEN": f"127.0.0.1:{port}",
        "LEARNFLOW_METRICS_LISTEN": f"127.0.0.1:{free_port_run(args.workers)}",
    }
    pid = processes.start(
        f"learnflow-{args.workers}w",
        [sys.executable, "-m", "learnflow", "serve", f"--workers={args.workers}"],
        env=env,
    )
    wait_grpc(f"127.0.0.1:{port}", 60)
    notes = []
    for key in ("grpc_course", "grpc_lesson"):
        base = next(load for load in all_loads if load.key == key)
        load = Load(
            f"{key}_{args.workers}w",
            f"{base.label}, {args.workers} workers",
            "ghz",
            f"127.0.0.1:{port}",
            base.call,
            base.data,
            token=base.token,
        )
        results = [
            measure(tools, world, load, args.concurrency, args.duration) for _ in range(args.rounds)
        ]
        runs[load.key] = results
        one = median(runs[key]).rps
        many = median(results).rps
        notes.append(
            f"{load.label}: {many:,.0f}/s vs {one:,.0f}/s with 1 worker ({many / one:.2f}x)"
        )
    notes.append(
        f"{args.workers}-worker server pid {pid}: VmRSS {tree_rss_kib(pid) / 1024:.0f} MiB"
        " (supervisor and workers)"
    )
    return notes


if __name__ == "__main__":
    main()
