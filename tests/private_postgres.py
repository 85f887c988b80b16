"""A private PostgreSQL cluster for fault tests: its own data directory and loopback port, so a
test may stop, kill and restart it without touching the cluster every other test shares.

Initialised the way `scripts/services` initialises the shared one (trust on loopback only,
fsync off; but see `synchronous_commit` below), with the Debian server binaries; run as the
`postgres` user when the tests run as root (PostgreSQL refuses root)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests.server_process import children_of, free_port


def server_binaries() -> Path | None:
    """The newest /usr/lib/postgresql/<major>/bin holding pg_ctl, if any."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return found[-1].parent if found else None


def _as_postgres(*argv: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.getuid() == 0 else list(argv)


async def _run(*argv: str, timeout_s: float = 60) -> None:
    proc = await asyncio.create_subprocess_exec(
        *_as_postgres(*argv),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
    assert proc.returncode == 0, f"{argv[0]} failed: {out.decode(errors='replace')}"


def _any_alive(pids: list[int]) -> bool:
    return any(Path(f"/proc/{pid}").exists() for pid in pids)


def _new_data_dir() -> Path:
    """An empty data directory the `postgres` user owns, in a directory it may traverse (not
    pytest's tmp_path: that one is private to root)."""
    root = Path(tempfile.mkdtemp(prefix="learnflow-pg-"))
    root.chmod(0o755)
    data = root / "data"
    data.mkdir()
    if os.getuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    return data


def _configure(data: Path, port: int) -> None:
    # Durability as in production as far as a process crash goes: `synchronous_commit` stays
    # on, since with it off a kill -9 loses commits already acknowledged (and projected: the
    # read side then runs ahead of the event log, and the txids of the lost transactions are
    # handed out again). fsync only matters if the machine crashes.
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(
            f"listen_addresses = '127.0.0.1'\nport = {port}\n"
            f"unix_socket_directories = '{data}'\nfsync = off\nfull_page_writes = off\n"
        )
    (data / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")


@dataclass
class PrivatePostgres:
    bin: Path
    data: Path
    port: int

    def url(self, database: str = "postgres", user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    async def start(self) -> None:
        """Starts the cluster on its port and waits until it accepts connections."""
        await _run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.data / "server.log"),
            "-w",
            "-t",
            "30",
            "start",
        )

    async def stop_fast(self) -> None:
        """`pg_ctl stop -m fast`: sessions are told (57P01) and ended, then a clean shutdown."""
        await _run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().splitlines()[0])

    async def kill(self) -> None:
        """kill -9 of the postmaster (a crash): its backends notice and exit on their own; this
        waits for them, since a new postmaster refuses to start while they hold the shared
        memory."""
        pid = self.postmaster_pid()
        backends = children_of(pid)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while _any_alive([pid, *backends]):
            assert time.monotonic() < deadline, "PostgreSQL backends outlived their postmaster"
            await asyncio.sleep(0.05)

    async def create_database(self, name: str) -> None:
        async with await psycopg.AsyncConnection.connect(self.url(), autocommit=True) as conn:
            await conn.execute(f'CREATE DATABASE "{name}"')


@contextlib.asynccontextmanager
async def private_postgres() -> AsyncIterator[PrivatePostgres]:
    """An initialised, running private cluster; stopped and deleted afterwards."""
    binaries = server_binaries()
    assert binaries is not None, "PostgreSQL server binaries not found"
    data = _new_data_dir()
    cluster = PrivatePostgres(binaries, data, free_port())
    try:
        await _run(
            str(binaries / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        _configure(data, cluster.port)
        await cluster.start()
        yield cluster
    finally:
        if (data / "postmaster.pid").exists():
            with contextlib.suppress(Exception):
                await cluster.stop_fast()
        with contextlib.suppress(Exception):
            await cluster.kill()
        shutil.rmtree(data.parent, ignore_errors=True)
