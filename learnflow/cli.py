"""`learnflow` command line: serve, migrate, demo data, projections rebuild, doctor, and the
development mail sink (`mail serve|list|show`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import sys

from learnflow.logs import configure_logging
from learnflow.settings import Settings


def _fail(message: str) -> None:
    print(f"learnflow: {message}", file=sys.stderr)
    raise SystemExit(1)


def check_dependencies(settings: Settings, postgres_url: str = "") -> None:
    """One clear line per unreachable database instead of a traceback."""
    postgres_url = postgres_url or settings.postgres_url
    from learnflow.dependencies import dependencies_reachable
    from learnflow.projections.store import ReadStore
    from learnflow.storage.unit_of_work import Database

    async def probe() -> dict[str, str]:
        db = Database.connect(postgres_url, pool_size=1)
        store = ReadStore.connect(settings.mongo_url, settings.mongo_database)
        try:
            return await dependencies_reachable(db, store)
        finally:
            await db.close()
            await store.close()

    problems = asyncio.run(probe())
    hints = {
        "postgres": f"PostgreSQL unreachable at {_redact(postgres_url)} "
        "(start it with `make up`, or set LEARNFLOW_POSTGRES_URL)",
        "mongodb": f"MongoDB unreachable at {settings.mongo_url} "
        "(start FerretDB with `make up`, or set LEARNFLOW_MONGO_URL)",
    }
    if problems:
        _fail("; ".join(f"{hints[name]}: {problem}" for name, problem in problems.items()))


def _doctor(settings: Settings) -> int:
    """One line per check; exit status 1 when something the server needs is wrong."""
    from learnflow import doctor

    report = asyncio.run(doctor.examine(settings))
    for check in report:
        print(
            f"{'ok  ' if check.ok else ('FAIL' if check.required else 'warn')} {check.name}: "
            f"{check.detail}"
        )
    return 1 if any(c.required and not c.ok for c in report) else 0


def _mail(settings: Settings, args: argparse.Namespace) -> int:
    import time

    from learnflow.mail.sink import Mailbox

    box = Mailbox(settings.mail_dir)
    if args.action == "serve":
        return _mail_serve(settings)
    if args.action == "list":
        deadline = time.monotonic() + args.wait
        while True:
            stored = box.list(to=args.to, subject=args.subject)
            if stored or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        if not stored:
            print(f"no such mail in {settings.mail_dir}", file=sys.stderr)
            return 1 if args.wait else 0
        for mail in stored:
            message = mail.message()
            print(f"{mail.id}  {message['Date']}  to {message['To']}  {message['Subject']}")
        return 0
    found = box.find(args.id)
    if found is None:
        print(f"learnflow: no single message {args.id!r} in {settings.mail_dir}", file=sys.stderr)
        return 1
    message = found.message()
    for header in ("From", "To", "Subject", "Date", "Message-ID"):
        print(f"{header}: {message[header]}")
    print()
    print(found.text())
    return 0


def _mail_serve(settings: Settings) -> int:
    import signal
    import threading

    from learnflow.mail.sink import sink_controller

    host, _, port = settings.mail_sink_listen.rpartition(":")
    controller = sink_controller(settings.mail_dir, host.strip("[]"), int(port))
    try:
        controller.start()
    except Exception as exc:
        _fail(f"cannot listen on {settings.mail_sink_listen}: {type(exc).__name__}: {exc}")
    print(
        f"mail sink on {settings.mail_sink_listen}, storing into {settings.mail_dir}",
        flush=True,
    )
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    controller.stop()
    return 0


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        creds, _, host = rest.rpartition("@")
        user = creds.split(":")[0]
        return f"{scheme}{sep}{user}@{host}"
    return url


def version() -> str:
    """The installed distribution's version (the package metadata, not a constant)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("learnflow")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="learnflow")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve_cmd = sub.add_parser("serve", help="run the gRPC server (with a standby projector)")
    serve_cmd.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes sharing the listen port (SO_REUSEPORT); one projector leads",
    )
    sub.add_parser("migrate", help="apply database migrations")
    sub.add_parser("demo-data", help="load the demo catalog and accounts (not in production)")
    sub.add_parser("doctor", help="check that PostgreSQL and MongoDB answer")
    proj = sub.add_parser("projections", help="read-model maintenance")
    proj_sub = proj.add_subparsers(dest="action", required=True)
    proj_sub.add_parser("rebuild", help="replay every event into fresh read models, then switch")
    proj_sub.add_parser("status", help="checkpoint against the event log, and parked events")
    proj_sub.add_parser("retry", help="apply the parked events again (after a fix)")
    mail = sub.add_parser("mail", help="the development mail sink and its mailbox")
    mail_sub = mail.add_subparsers(dest="action", required=True)
    mail_sub.add_parser(
        "serve", help="run the SMTP sink on LEARNFLOW_MAIL_SINK_LISTEN (stores every message)"
    )
    listing = mail_sub.add_parser("list", help="the stored messages, newest first")
    listing.add_argument("--to", default="", help="only messages to this address")
    listing.add_argument(
        "--subject", default="", help="only messages whose subject contains this (any case)"
    )
    listing.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait up to this long for a matching message (exit status 1 if none comes)",
    )
    show = mail_sub.add_parser("show", help="one stored message: headers and text body")
    show.add_argument("id", help="a message id from `learnflow mail list` (or its start)")
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    configure_logging(settings.log_level)
    if args.command == "doctor":
        raise SystemExit(_doctor(settings))
    if args.command == "mail":
        raise SystemExit(_mail(settings, args))
    if settings.problems():
        _fail("; ".join(settings.problems()) + " (see `learnflow doctor`)")

    if args.command == "migrate":
        check_dependencies(settings, settings.postgres_migration_url)
        from learnflow.migrations import upgrade_to_head

        upgrade_to_head(settings.postgres_migration_url)
        print("migrations applied")
    elif args.command == "serve":
        check_dependencies(settings)
        if args.workers > 1:
            _serve_workers(settings, args.workers)
        else:
            _serve(settings)
    elif args.command == "demo-data":
        if settings.is_production:
            _fail("demo data is refused when LEARNFLOW_ENV=production")
        check_dependencies(settings)
        from learnflow.demo import load_demo_data

        print(asyncio.run(load_demo_data(settings)))
    elif args.command == "projections":
        check_dependencies(settings)
        _projections(settings, args.action)


def _serve(settings: Settings, reuse_port: bool = False) -> None:
    from learnflow.server import serve

    configure_logging(settings.log_level)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(settings, reuse_port=reuse_port))


def _serve_workers(settings: Settings, workers: int) -> None:
    """`workers` server processes on one port (SO_REUSEPORT: the kernel spreads connections).
    Each runs a projector; the advisory lock lets exactly one lead. A worker that dies takes
    the others down with it, so a supervisor restarts the whole set."""
    import multiprocessing
    import signal

    if settings.grpc_listen.endswith(":0"):
        _fail("--workers needs a fixed port in LEARNFLOW_GRPC_LISTEN")
    context = multiprocessing.get_context("spawn")  # no gRPC state crosses a fork
    processes = [
        context.Process(
            target=_serve,
            args=(_worker_settings(settings, i), True),
            name=f"learnflow-worker-{i}",
        )
        for i in range(workers)
    ]
    for process in processes:
        process.start()

    def stop(signum: int, frame: object) -> None:
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: each drains its calls

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    failed = False
    while any(process.is_alive() for process in processes):
        for process in processes:
            process.join(timeout=0.5)
            if process.exitcode not in (None, 0) and not failed:
                failed = True
                stop(signal.SIGTERM, None)
    if failed:
        raise SystemExit(1)


def _worker_settings(settings: Settings, worker: int) -> Settings:
    """Worker `worker`'s settings: its own metrics port (port + worker), since each process
    has its own counters and a shared port would answer for a random one."""
    host, _, port = settings.metrics_listen.rpartition(":")
    if not settings.metrics_listen or int(port) == 0:
        return settings
    return dataclasses.replace(settings, metrics_listen=f"{host}:{int(port) + worker}")


def _projections(settings: Settings, action: str) -> None:
    from learnflow.projections import maintenance

    if action == "rebuild":
        generation, events, seconds = asyncio.run(maintenance.rebuild(settings))
        rate = events / seconds if seconds else 0.0
        print(
            f"rebuilt read models generation {generation}: {events} events in {seconds:.2f}s "
            f"({rate:.0f} events/s); now active"
        )
    elif action == "status":
        state = asyncio.run(maintenance.status(settings))
        behind = "caught up" if state.checkpoint >= state.head else "behind"
        print(
            f"generation {state.generation}: checkpoint {state.checkpoint.token()}, "
            f"event log head {state.head.token()} ({behind}); {len(state.parked)} parked"
        )
        for record in state.parked:
            print(
                f"  parked {record['_id']} {record['event_type']} "
                f"{record['aggregate_type']}/{record['aggregate_id']} "
                f"attempts={record.get('attempts', 0)}: {record['error']}"
            )
        if state.parked:
            raise SystemExit(2)  # scripts and probes can tell a degraded read side
    elif action == "retry":
        applied, left = asyncio.run(maintenance.retry(settings))
        print(f"re-applied {applied} parked event(s); {left} still parked")
        if left:
            raise SystemExit(2)


if __name__ == "__main__":
    main()
