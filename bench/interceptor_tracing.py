"""Micro-benchmark: what the server interceptor costs per GetCourse call, without the handler
(an instant stub) and without gRPC (a stub servicer context), with tracing off and on.

    .venv/bin/python bench/interceptor_tracing.py            # off, and on (ratio 1 and 0)
    PYTHONPATH=/path/to/other/checkout .venv/bin/python bench/interceptor_tracing.py --off-only

`--off-only` runs nothing that needs `learnflow.tracing`, so it also measures a checkout from
before tracing existed (the same script, another PYTHONPATH). Medians of `--rounds` rounds of
`--calls` calls each, in microseconds per call. Not part of any test run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from learnflow.security.access import load_rules
from learnflow.security.interceptor import AccessLog, ApiInterceptor
from learnflow.security.rate_limits import RateLimiter
from learnflow.settings import Settings
from learnflow.v1 import courses_pb2

METHOD = "/learnflow.v1.CatalogService/GetCourse"


class StubContext:
    """The few ServicerContext methods the interceptor uses on a successful unary call; the
    caller (a gateway) sends a traceparent, sampled or not."""

    def __init__(self, sampled: bool = True) -> None:
        flags = "01" if sampled else "00"
        self.metadata = (
            ("x-request-id", "bench-1"),
            ("traceparent", "00-" + "a" * 32 + "-" + "b" * 16 + "-" + flags),
        )

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.metadata

    def peer(self) -> str:
        return "ipv4:127.0.0.1:50000"

    async def send_initial_metadata(self, metadata: Any) -> None:
        return None


async def handler(request: Any, context: Any) -> courses_pb2.Course:
    return courses_pb2.Course(title="A course")


async def measure(calls: int, rounds: int, sampled: bool = True) -> float:
    settings = Settings(rate_limit_read="1000000000/minute")
    interceptor = ApiInterceptor(
        load_rules(),
        authenticator=None,  # type: ignore[arg-type]  # GetCourse is public: never called
        rate_limiter=RateLimiter(settings),
        access_log=AccessLog(sample=0.0, slow_ms=1e9),  # no log lines: the path, not logging
    )
    request = courses_pb2.GetCourseRequest(course_id="0190b2d4-0000-7000-8000-000000000000")
    context = StubContext(sampled)
    results = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            await interceptor.intercept(handler, request, context, METHOD)  # type: ignore[arg-type]
        results.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--off-only", action="store_true")
    args = parser.parse_args()
    print(f"tracing off: {asyncio.run(measure(args.calls, args.rounds)):.2f} us/call")
    if args.off_only:
        return
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from learnflow import tracing

    for sampled in (True, False):
        # Spans go to a batch processor and an in-memory exporter: the cost of recording and
        # queueing them, not of a network export (which happens on the processor's thread).
        provider = tracing.make_provider(
            "bench", 1.0, InMemorySpanExporter(), batch=True, environ={}
        )
        tracing.install(provider)
        try:
            cost = asyncio.run(measure(args.calls, args.rounds, sampled))
        finally:
            tracing.uninstall()
            provider.shutdown()
        which = "sampled" if sampled else "not sampled"
        print(f"tracing on, caller's trace {which}: {cost:.2f} us/call")


if __name__ == "__main__":
    main()
