"""The same read directly over gRPC (ghz) and through the HTTP gateway (wrk).

    python bench/gateway_overhead.py    # own servers on free ports (needs `make up`)
    python bench/gateway_overhead.py --grpc 127.0.0.1:50051 --http http://127.0.0.1:8080  # make run

Both tools get the same concurrency and duration; each round runs gRPC then HTTP, and the
report is the median of the rounds: throughput, p50/p90/p99 and gateway/gRPC ratios.
ghz is `go install`ed into .state/bin and wrk comes from Debian when missing. See README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STATE_BIN = ROOT / ".state" / "bin"
GHZ_MODULE = "github.com/bojand/ghz/cmd/ghz@latest"
DEMO_STUDENT = ("student@learnflow.dev", "learn-demo-pass")
# Bench-only: the production rate limits (600 reads/minute) would turn the run into 429s.
UNLIMITED = "100000000/minute"

# wrk hands the Lua `done` callback the summary and latency histogram (microseconds).
WRK_REPORT = """
done = function(summary, latency, requests)
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non2xx": %d, "errors": %d, ' ..
    '"p50": %d, "p90": %d, "p99": %d}\\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class Result:
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    requests: int
    failures: int


@dataclass(frozen=True)
class Target:
    grpc: str
    http: str
    call: str  # full gRPC method name, as ghz wants it
    data: dict[str, Any]
    http_path: str
    token: str


def say(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- tools -----------------------------------------------------------------------------------


def ensure_ghz() -> str:
    found = shutil.which("ghz") or (
        str(STATE_BIN / "ghz") if (STATE_BIN / "ghz").exists() else None
    )
    if found:
        return found
    say(f"installing ghz (go install {GHZ_MODULE})")
    STATE_BIN.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["go", "install", GHZ_MODULE], check=True, env={**os.environ, "GOBIN": str(STATE_BIN)}
    )
    return str(STATE_BIN / "ghz")


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    say("installing wrk (apt: wrk)")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env)
    return shutil.which("wrk") or "/usr/bin/wrk"


# -- servers ---------------------------------------------------------------------------------


def wait_http(url: str, within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: {url} did not answer 200 within {within:.0f}s")
        time.sleep(0.2)


def wait_grpc(target: str, within: float) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + within
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"bench: gRPC server {target} not SERVING within {within:.0f}s")
            time.sleep(0.2)


def _database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@contextlib.contextmanager
def own_servers(database: str) -> Iterator[tuple[str, str]]:
    """gRPC server and gateway as subprocesses, on a database of their own with demo data."""
    import psycopg

    pg = os.environ.get("LEARNFLOW_POSTGRES_URL", "postgresql://postgres@127.0.0.1:55432/postgres")
    with psycopg.connect(_database(pg, "postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        if exists.fetchone() is None:
            conn.execute(f'CREATE DATABASE "{database}"')
    grpc_port, http_port = free_port(), free_port()
    state = Path(tempfile.mkdtemp(prefix="learnflow-bench-"))
    env = {
        **os.environ,
        "LEARNFLOW_POSTGRES_URL": _database(pg, database),
        "LEARNFLOW_MONGO_URL": os.environ.get("LEARNFLOW_MONGO_URL", "mongodb://127.0.0.1:57017/"),
        "LEARNFLOW_MONGO_DATABASE": database,
        "LEARNFLOW_GRPC_LISTEN": f"127.0.0.1:{grpc_port}",
        "LEARNFLOW_STATE_DIR": str(state),
        "LEARNFLOW_LOG_LEVEL": "WARNING",
        "LEARNFLOW_BCRYPT_ROUNDS": "4",
        "LEARNFLOW_RATE_LIMIT_READ": UNLIMITED,
        "LEARNFLOW_RATE_LIMIT_WRITE": UNLIMITED,
        "LEARNFLOW_RATE_LIMIT_AUTH": UNLIMITED,
        "LEARNFLOW_RATE_LIMIT_LOGIN_PER_ACCOUNT": UNLIMITED,
        "LEARNFLOW_GATEWAY_GRPC_TARGET": f"127.0.0.1:{grpc_port}",
        "LEARNFLOW_GATEWAY_PORT": str(http_port),
        "LEARNFLOW_GATEWAY_RELOAD_INTERVAL_S": "0",
    }
    python = sys.executable
    say(f"migrations and demo data in database {database}")
    subprocess.run([python, "-m", "learnflow", "migrate"], check=True, env=env, cwd=ROOT)
    subprocess.run(
        [python, "-m", "learnflow", "demo-data"],
        check=True,
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    processes: list[subprocess.Popen[bytes]] = []
    try:
        say(f"gRPC server on 127.0.0.1:{grpc_port}, gateway on 127.0.0.1:{http_port}")
        quiet = subprocess.DEVNULL
        processes.append(
            subprocess.Popen(
                [python, "-m", "learnflow", "serve"], env=env, cwd=ROOT, stdout=quiet, stderr=quiet
            )
        )
        wait_grpc(f"127.0.0.1:{grpc_port}", 60)
        processes.append(
            subprocess.Popen(
                [python, "-m", "gateway"], env=env, cwd=ROOT, stdout=quiet, stderr=quiet
            )
        )
        wait_http(f"http://127.0.0.1:{http_port}/readyz", 60)
        yield f"127.0.0.1:{grpc_port}", f"http://127.0.0.1:{http_port}"
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(state, ignore_errors=True)


def prepare(grpc_target: str, http: str, read: str) -> Target:
    """Log in as the demo student and pick what to read."""
    import grpc

    from learnflow.v1 import courses_pb2, courses_pb2_grpc, identity_pb2, identity_pb2_grpc

    with grpc.insecure_channel(grpc_target) as channel:
        email, password = DEMO_STUDENT
        session = identity_pb2_grpc.IdentityServiceStub(channel).CreateSession(
            identity_pb2.CreateSessionRequest(email=email, password=password), timeout=10
        )
        if read == "me":
            return Target(
                grpc=grpc_target,
                http=http,
                call="learnflow.v1.ProfileService.GetCurrentUser",
                data={},
                http_path="/v1/users/me",
                token=session.access_token,
            )
        catalog = courses_pb2_grpc.CatalogServiceStub(channel).ListCourses(
            courses_pb2.ListCoursesRequest(page_size=1), timeout=10
        )
        if not catalog.courses:
            raise SystemExit("bench: the catalog is empty; load the demo data first")
        course_id = catalog.courses[0].id
    return Target(
        grpc=grpc_target,
        http=http,
        call="learnflow.v1.CatalogService.GetCourse",
        data={"course_id": course_id},
        http_path=f"/v1/courses/{course_id}",
        token=session.access_token,
    )


# -- load ------------------------------------------------------------------------------------


def _run(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench: {command[0]} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def protoset(out: Path) -> Path:
    """The contract as a FileDescriptorSet for ghz.

    ghz asks reflection for the file containing the *method* symbol, which Python's reflection
    service does not resolve; a descriptor set compiled from the protos sidesteps that.
    """
    from importlib import resources

    from google.api import annotations_pb2
    from grpc_tools import protoc  # type: ignore[import-untyped]

    googleapis = Path(annotations_pb2.__file__).parent.parent.parent
    well_known = Path(str(resources.files("grpc_tools") / "_proto"))
    protos = ROOT / "protos"
    files = sorted(str(p.relative_to(protos)) for p in (protos / "learnflow").rglob("*.proto"))
    target = out / "learnflow.protoset"
    args = [
        "protoc",
        f"-I{protos}",
        f"-I{googleapis}",
        f"-I{well_known}",
        f"--descriptor_set_out={target}",
        "--include_imports",
        *files,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("bench: protoc failed on protos/")
    return target


def run_ghz(ghz: str, target: Target, concurrency: int, seconds: int, descriptors: Path) -> Result:
    command = [
        ghz,
        "--insecure",
        f"--protoset={descriptors}",
        f"--call={target.call}",
        f"--data={json.dumps(target.data)}",
        f"--metadata={json.dumps({'authorization': f'Bearer {target.token}'})}",
        f"--concurrency={concurrency}",
        f"--duration={seconds}s",
        "--timeout=10s",
        "--format=json",
        target.grpc,
    ]
    report = json.loads(_run(command))
    percentiles = {p["percentage"]: p["latency"] / 1e6 for p in report["latencyDistribution"]}
    codes: dict[str, int] = report.get("statusCodeDistribution", {})
    errors: dict[str, int] = report.get("errorDistribution") or {}
    # A duration-bound run ends with up to `concurrency` calls in flight, which ghz cuts off
    # ("transport is closing" / canceled): the end of the run, not failures of the server.
    cut_off = sum(n for e, n in errors.items() if "transport is closing" in e or "Canceled" in e)
    failed = sum(n for code, n in codes.items() if code != "OK") - min(cut_off, concurrency)
    return Result(
        rps=report["rps"],
        p50_ms=percentiles[50],
        p90_ms=percentiles[90],
        p99_ms=percentiles[99],
        requests=report["count"],
        failures=max(0, failed),
    )


def run_wrk(wrk: str, target: Target, concurrency: int, seconds: int, threads: int) -> Result:
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_REPORT)
        script.flush()
        command = [
            wrk,
            f"--threads={min(threads, concurrency)}",
            f"--connections={concurrency}",
            f"--duration={seconds}s",
            "--timeout=10s",
            f"--script={script.name}",
            "--header=Authorization: Bearer " + target.token,
            target.http + target.http_path,
        ]
        out = _run(command)
    report = json.loads(out.strip().splitlines()[-1])
    return Result(
        rps=report["requests"] / (report["duration_us"] / 1e6),
        p50_ms=report["p50"] / 1e3,
        p90_ms=report["p90"] / 1e3,
        p99_ms=report["p99"] / 1e3,
        requests=report["requests"],
        failures=report["non2xx"] + report["errors"],
    )


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


def report(target: Target, grpc: Result, http: Result, args: argparse.Namespace) -> str:
    lines = [
        f"read: {target.call}  (HTTP GET {target.http_path})",
        f"concurrency {args.concurrency}, {args.duration}s per run, median of {args.rounds} rounds",
        "",
        f"{'':<22}{'req/s':>10}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'failed':>8}",
    ]
    for name, r in (("gRPC direct (ghz)", grpc), ("HTTP gateway (wrk)", http)):
        lines.append(
            f"{name:<22}{r.rps:>10.0f}{r.p50_ms:>10.2f}{r.p90_ms:>10.2f}{r.p99_ms:>10.2f}"
            f"{r.failures:>8}"
        )
    lines.append(
        f"{'gateway / gRPC':<22}{http.rps / grpc.rps:>10.2f}{http.p50_ms / grpc.p50_ms:>10.2f}"
        f"{http.p90_ms / grpc.p90_ms:>10.2f}{http.p99_ms / grpc.p99_ms:>10.2f}"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grpc", help="a running gRPC server (else start our own)")
    parser.add_argument("--http", help="a running gateway, with --grpc")
    parser.add_argument("--read", choices=("course", "me"), default="course")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per tool")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--database", default="learnflow_bench", help="for our own servers")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if bool(args.grpc) != bool(args.http):
        parser.error("--grpc and --http go together")

    ghz, wrk = ensure_ghz(), ensure_wrk()
    descriptors = protoset(Path(tempfile.mkdtemp(prefix="learnflow-bench-protos-")))
    servers = (
        contextlib.nullcontext((args.grpc, args.http)) if args.grpc else own_servers(args.database)
    )
    with servers as (grpc_target, http_url):
        target = prepare(grpc_target, http_url, args.read)
        if args.warmup:
            say("warming up")
            run_ghz(ghz, target, args.concurrency, args.warmup, descriptors)
            run_wrk(wrk, target, args.concurrency, args.warmup, args.wrk_threads)
        grpc_runs: list[Result] = []
        http_runs: list[Result] = []
        for i in range(args.rounds):
            grpc_runs.append(run_ghz(ghz, target, args.concurrency, args.duration, descriptors))
            http_runs.append(
                run_wrk(wrk, target, args.concurrency, args.duration, args.wrk_threads)
            )
            say(
                f"round {i + 1}: gRPC {grpc_runs[-1].rps:.0f}/s p99 {grpc_runs[-1].p99_ms:.1f}ms"
                f" | HTTP {http_runs[-1].rps:.0f}/s p99 {http_runs[-1].p99_ms:.1f}ms"
            )
    grpc_median, http_median = median(grpc_runs), median(http_runs)
    print(report(target, grpc_median, http_median, args))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "call": target.call,
                    "http_path": target.http_path,
                    "concurrency": args.concurrency,
                    "duration_s": args.duration,
                    "grpc": {
                        "median": asdict(grpc_median),
                        "rounds": [asdict(r) for r in grpc_runs],
                    },
                    "http": {
                        "median": asdict(http_median),
                        "rounds": [asdict(r) for r in http_runs],
                    },
                },
                indent=2,
            )
        )
    if grpc_median.failures or http_median.failures:
        raise SystemExit("bench: some requests failed (see the `failed` column)")


if __name__ == "__main__":
    main()
