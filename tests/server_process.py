"""`learnflow serve` as a real process on the session's databases and signing keys."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from learnflow.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _open_log(path: Path | None) -> BinaryIO | None:
    return open(path, "wb") if path is not None else None  # closed by the caller


def _tail(path: Path | None) -> str:
    return path.read_text(errors="replace")[-3000:] if path is not None else ""


@dataclass(frozen=True)
class ServerProcess:
    target: str  # host:port
    pid: int
    process: asyncio.subprocess.Process


@contextlib.asynccontextmanager
async def server_process(
    settings: Settings,
    *args: str,
    metrics_listen: str = "",
    extra_env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
) -> AsyncIterator[ServerProcess]:
    """Starts `learnflow serve *args`, waits until it is SERVING, yields it, and stops it
    (SIGTERM, then SIGKILL after 15 s) unless it already exited. No metrics endpoint unless
    `metrics_listen` names one (the default port would collide between concurrent runs).
    `extra_env` overrides or adds environment variables; the process's output goes to
    `log_path` when given (to read what it logged), else nowhere."""
    port = free_port()
    env = {
        **os.environ,
        "LEARNFLOW_ENV": "test",
        "LEARNFLOW_GRPC_LISTEN": f"127.0.0.1:{port}",
        "LEARNFLOW_POSTGRES_URL": settings.postgres_url,
        "LEARNFLOW_POSTGRES_MIGRATION_URL": settings.postgres_migration_url,
        "LEARNFLOW_MONGO_URL": settings.mongo_url,
        "LEARNFLOW_MONGO_DATABASE": settings.mongo_database,
        "LEARNFLOW_SIGNING_KEYS_DIR": str(settings.signing_keys_dir),
        "LEARNFLOW_RATE_LIMIT_READ": "100000/minute",
        "LEARNFLOW_RATE_LIMIT_WRITE": "100000/minute",
        "LEARNFLOW_RATE_LIMIT_AUTH": "100000/minute",
        "LEARNFLOW_LOG_LEVEL": "WARNING",
        "LEARNFLOW_METRICS_LISTEN": metrics_listen,
        **(extra_env or {}),
    }
    log = _open_log(log_path)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "learnflow",
        "serve",
        *args,
        env=env,
        stdout=log or asyncio.subprocess.DEVNULL,
        stderr=log or asyncio.subprocess.DEVNULL,
    )
    target = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        async with grpc.aio.insecure_channel(target) as channel:
            while True:
                try:
                    reply = await health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(), timeout=1
                    )
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.aio.AioRpcError:
                    pass
                if proc.returncode is not None:
                    said = _tail(log_path)
                    raise AssertionError(f"the server process exited: {said}")
                assert time.monotonic() < deadline, "the server process did not come up"
                await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)  # its account listener connects
        yield ServerProcess(target, proc.pid, proc)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        if log is not None:
            log.close()


def children_of(pid: int) -> list[int]:
    """Process ids whose parent is `pid` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    found.append(int(entry))
    return found
