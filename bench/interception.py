"""What a server interceptor costs by the way it is attached, on a constant GetCourse reply.

    python bench/interception.py                  # 5 rounds x 5 s, 50 in flight
    python bench/interception.py --rounds 5 --duration 8

Three grpc.aio servers in processes of their own, on free loopback ports, answer
CatalogService.GetCourse with the same constant reply (no database):

- `none`: no interceptor (the floor of bench/read_path.py);
- `hook`: a pass-through interceptor through grpc.aio's `interceptors=` hook, wrapping the
  method's handler on every call;
- `library`: the same hook with the per-call layers LearnFlow had until this change: the
  grpc-interceptor library's shape (a closure and a handler per call, an `intercept`
  coroutine around the method) and a handler copy with a tolerant request decoder;
- `guarded`: the same pass-through wrapped once at start and served by a generic handler's
  dict look-up, as `learnflow.security.interceptor.GuardedServices` does.

Each round runs ghz against each server in turn (same concurrency and duration) and reads
the server's CPU time from /proc: req/s and CPU microseconds per request, medians over the
rounds, ratios against `none` from the same run. A figure, never a gate.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import grpc
from grpc_health.v1 import health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway_overhead import free_port, protoset, say, wait_grpc  # noqa: E402
from read_path import ensure_ghz  # noqa: E402

from learnflow.v1 import courses_pb2, courses_pb2_grpc  # noqa: E402

# The asyncio health servicer ships no types.
health_module: Any = importlib.import_module("grpc_health.v1.health")
MODES = ("none", "hook", "library", "guarded")
METHOD = "learnflow.v1.CatalogService.GetCourse"


class Constant(courses_pb2_grpc.CatalogServiceServicer):
    def __init__(self) -> None:
        self.reply = courses_pb2.GetCourseResponse(
            course=courses_pb2.Course(
                id="00000000-0000-4000-8000-000000000001",
                title="A constant course",
                summary="The same reply every time. " * 20,
            ),
            lessons=[
                courses_pb2.LessonSummary(id=f"lesson-{n}", title=f"Lesson {n}", position=n)
                for n in range(1, 9)
            ],
        )

    async def GetCourse(self, request: Any, context: Any) -> courses_pb2.GetCourseResponse:
        return self.reply


async def _pass(
    method: Callable[[Any, Any], Any], request: Any, context: Any
) -> Any:  # the interceptor's own work: none, to measure the attachment alone
    return await method(request, context)


if TYPE_CHECKING:
    _Interceptor = grpc.aio.ServerInterceptor[Any, Any]
    _GenericHandler = grpc.GenericRpcHandler[Any, Any]
else:  # not subscriptable at run time
    _Interceptor = grpc.aio.ServerInterceptor
    _GenericHandler = grpc.GenericRpcHandler


class PerCallHook(_Interceptor):
    """Builds the wrapped handler on every call, like a generic interceptor library."""

    async def intercept_service(
        self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails
    ) -> Any:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        return self.wrap(handler, details)

    def wrap(self, handler: Any, details: grpc.HandlerCallDetails) -> Any:
        inner = handler.unary_unary

        async def unary(request: Any, context: Any) -> Any:
            return await _pass(inner, request, context)

        return grpc.unary_unary_rpc_method_handler(
            unary, handler.request_deserializer, handler.response_serializer
        )


class LibraryShapedHook(PerCallHook):
    """What LearnFlow's server did per call with grpc-interceptor's AsyncServerInterceptor:
    an `intercept` coroutine around the method, and a handler copy with a tolerant decoder."""

    async def intercept(self, method: Any, request: Any, context: Any, name: str) -> Any:
        return await _pass(method, request, context)

    def wrap(self, handler: Any, details: grpc.HandlerCallDetails) -> Any:
        inner = handler.unary_unary

        async def invoke(request: Any, context: Any) -> Any:
            return await self.intercept(inner, request, context, details.method)

        wrapped = grpc.unary_unary_rpc_method_handler(
            invoke, handler.request_deserializer, handler.response_serializer
        )
        decode = wrapped.request_deserializer

        def tolerant(data: bytes) -> Any:
            try:
                return decode(data) if decode is not None else data
            except Exception:
                return None

        return cast(Any, wrapped)._replace(request_deserializer=tolerant)


class Registrar:
    """Collects handlers as a server would (the two methods generated code calls)."""

    def __init__(self) -> None:
        self.handlers: dict[str, Any] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        pass  # the same handlers also come registered, below

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        for name, handler in handlers.items():
            self.handlers[f"/{service}/{name}"] = handler


class Guarded(_GenericHandler):
    def __init__(self, registrar: Registrar) -> None:
        self.handlers: dict[str, Any] = {}
        for method, handler in registrar.handlers.items():
            inner = handler.unary_unary

            def wrap(inner: Any) -> Any:
                async def unary(request: Any, context: Any) -> Any:
                    return await _pass(inner, request, context)

                return unary

            self.handlers[method] = grpc.unary_unary_rpc_method_handler(
                wrap(inner), handler.request_deserializer, handler.response_serializer
            )

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        return self.handlers.get(handler_call_details.method)


async def serve(mode: str, listen: str) -> None:
    hooks: dict[str, Any] = {"hook": PerCallHook(), "library": LibraryShapedHook()}
    server = grpc.aio.server(interceptors=[hooks[mode]] if mode in hooks else None)
    # The other CatalogService methods answer UNIMPLEMENTED (the generated base class).
    servicer = Constant()  # type: ignore[abstract]
    if mode == "guarded":
        registrar = Registrar()
        courses_pb2_grpc.add_CatalogServiceServicer_to_server(servicer, cast(Any, registrar))
        server.add_generic_rpc_handlers((Guarded(registrar),))
    else:
        courses_pb2_grpc.add_CatalogServiceServicer_to_server(servicer, server)
    health_pb2_grpc.add_HealthServicer_to_server(health_module.aio.HealthServicer(), server)
    server.add_insecure_port(listen)
    await server.start()
    await server.wait_for_termination()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    ghz: str, descriptors: Path, target: str, pid: int, concurrency: int, seconds: float
) -> tuple[float, float]:
    """req/s and server CPU microseconds per request."""
    before = cpu_seconds(pid)
    out = subprocess.run(
        [
            ghz,
            "--insecure",
            f"--protoset={descriptors}",
            f"--call={METHOD}",
            '--data={"course_id": "00000000-0000-4000-8000-000000000001"}',
            f"--concurrency={concurrency}",
            f"--duration={seconds}s",
            "--format=json",
            target,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    used = cpu_seconds(pid) - before
    report = json.loads(out)
    ok = report.get("statusCodeDistribution", {}).get("OK", 0)
    return float(report["rps"]), used / max(ok, 1) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--serve", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--listen", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, args.listen))
        return
    ghz = ensure_ghz()
    with tempfile.TemporaryDirectory() as tmp:
        descriptors = protoset(Path(tmp))
        servers: dict[str, tuple[str, subprocess.Popen[bytes]]] = {}
        try:
            for mode in MODES:
                listen = f"127.0.0.1:{free_port()}"
                command = [sys.executable, __file__, "--serve", mode, "--listen", listen]
                servers[mode] = (listen, subprocess.Popen(command))
            for listen, _ in servers.values():
                wait_grpc(listen, 30)
            results: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}
            for round_ in range(1, args.rounds + 1):
                for mode, (listen, process) in servers.items():
                    rps, cpu = measure(
                        ghz, descriptors, listen, process.pid, args.concurrency, args.duration
                    )
                    results[mode].append((rps, cpu))
                    say(f"round {round_}: {mode:8s} {rps:7.0f}/s  {cpu:5.0f} us CPU/request")
                    time.sleep(0.5)
        finally:
            for _, process in servers.values():
                process.terminate()
                process.wait(10)
    rates = {mode: statistics.median(r for r, _ in rows) for mode, rows in results.items()}
    costs = {mode: statistics.median(c for _, c in rows) for mode, rows in results.items()}
    print(f"\n{args.concurrency} in flight, {args.duration:g} s per run, median of {args.rounds}")
    print("\n| interceptor attached | req/s | vs none | CPU us/request | vs none |")
    print("|---|---:|---:|---:|---:|")
    for mode in MODES:
        print(
            f"| {mode} | {rates[mode]:,.0f} | {rates[mode] / rates['none']:.2f}x"
            f" | {costs[mode]:.0f} | {costs[mode] / costs['none']:.2f}x |"
        )


if __name__ == "__main__":
    main()
