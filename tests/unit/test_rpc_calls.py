"""The per-call metrics kept as plain counts read exactly as prometheus_client's own counter
and histogram would for the same calls."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from learnflow.metrics import _RPC_BUCKETS, RPC_DURATIONS, RPC_REQUESTS, RpcCalls


def test_rpc_calls_expose_what_the_library_families_would() -> None:
    rng = random.Random(13)
    ours = CollectorRegistry()
    calls = RpcCalls(_RPC_BUCKETS)
    ours.register(calls)
    theirs = CollectorRegistry()
    requests = Counter(*RPC_REQUESTS, ["method", "code"], registry=theirs)
    durations = Histogram(*RPC_DURATIONS, ["method"], buckets=_RPC_BUCKETS, registry=theirs)
    methods = ["/s.A/Get", "/s.A/List", "/s.B/Watch"]
    # Bounds themselves, values between and beyond them, and streams (no duration).
    values = [*_RPC_BUCKETS, 0.0, 0.0004, 0.0031, 0.7, 12.5, 99.0]
    for _ in range(3000):
        method = rng.choice(methods)
        code = rng.choice(["OK", "OK", "NOT_FOUND", "INTERNAL"])
        seconds = None if method.endswith("Watch") else rng.choice(values) * rng.random()
        if rng.random() < 0.3 and seconds is not None:
            seconds = rng.choice(values)  # exactly on a bound now and then
        calls.finish(method, code, seconds)
        requests.labels(method=method, code=code).inc()
        if seconds is not None:
            durations.labels(method=method).observe(seconds)

    def lines(registry: CollectorRegistry) -> list[str]:
        text = generate_latest(registry).decode()
        # prometheus_client adds `_created` series unless disabled process-wide.
        return sorted(line for line in text.splitlines() if "_created" not in line)

    assert lines(ours) == lines(theirs)
    assert any('le="0.001"' in line for line in lines(ours))
