"""Prometheus metrics of one server process: one registry, every collector created at import.

The layers that measure (the interceptor, the rate limiter, the read and query caches, the
consistency watcher, the health watcher of the composition root) update the families below;
values that live in objects (the caches' sizes, the SQLAlchemy pool) are read at scrape time
from the objects registered with `watch_read_cache` / `watch_query_cache` / `watch_pool`.
`learnflow serve` exposes the registry on `LEARNFLOW_METRICS_LISTEN` (`serve_metrics`); tests
read `metrics_text()`.

Labels are bounded: gRPC method names the server registered (unknown methods never reach the
interceptor), status code names, rate-limit classes, fixed outcome and state words. Never a
user id, an address or a token.
"""

from __future__ import annotations

import bisect
import itertools
import math
import weakref
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

# No `_created` series beside every counter and histogram.
disable_created_metrics()  # type: ignore[no-untyped-call]

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

# Unary RPC latency: from a millisecond read to a slow command that waited for a lock.
_RPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Read-your-writes waits are bounded by `consistency_wait_s` (2 s by default).
_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)

# (name, help) of the per-call families RpcCalls exposes.
RPC_REQUESTS = (
    "learnflow_grpc_requests",
    "Finished gRPC calls (unary and streaming) by full method name and status code.",
)
RPC_DURATIONS = (
    "learnflow_grpc_request_duration_seconds",
    "Duration of unary gRPC calls (streams are long-lived and not observed here).",
)


class Tally:
    """A count bumped with `+=` on the event loop's thread and read at scrape time (from the
    metrics server's thread: an int read is atomic). For what changes on every call, where a
    prometheus_client child takes a lock per increment."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


class RpcCalls(Collector):
    """Finished calls by (method, code) and unary durations by method, as plain counts (three
    locked increments per call otherwise, on every RPC), turned into the counter and histogram
    families at scrape time. A scrape racing a call may see its count before its duration,
    as with prometheus_client's own histograms, whose values are locked one by one."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.bounds = buckets
        self.finished: dict[tuple[str, str], int] = {}
        # Per method: the count of each bucket (not cumulative), then +Inf's, then the sum.
        self.durations: dict[str, list[float]] = {}

    def finish(self, method: str, code: str, seconds: float | None) -> None:
        key = (method, code)
        self.finished[key] = self.finished.get(key, 0) + 1
        if seconds is None:
            return
        counts = self.durations.get(method)
        if counts is None:
            counts = self.durations[method] = [0.0] * (len(self.bounds) + 2)
        counts[bisect.bisect_left(self.bounds, seconds)] += 1  # bucket `le` bound >= seconds
        counts[-1] += seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(*RPC_REQUESTS, labels=["method", "code"])
        for (method, code), count in list(self.finished.items()):
            requests.add_metric([method, code], float(count))
        yield requests
        durations = HistogramMetricFamily(*RPC_DURATIONS, labels=["method"])
        for method, live in list(self.durations.items()):
            counts = live[:]  # one consistent copy
            cumulative = list(itertools.accumulate(counts[:-1]))
            buckets = [
                (floatToGoString(bound), total)  # type: ignore[no-untyped-call]
                for bound, total in zip((*self.bounds, math.inf), cumulative, strict=True)
            ]
            durations.add_metric([method], buckets, counts[-1])
        yield durations

    def describe(self) -> Iterable[Metric]:
        return []


RPC_CALLS = RpcCalls(_RPC_BUCKETS)
REGISTRY.register(RPC_CALLS)
CALLS_IN_FLIGHT = Tally()
GRPC_IN_FLIGHT = Gauge(
    "learnflow_grpc_in_flight_requests",
    "gRPC calls being handled now, open server streams included.",
    registry=REGISTRY,
)
GRPC_IN_FLIGHT.set_function(lambda: float(CALLS_IN_FLIGHT.value))
PROJECTION_LAG_SECONDS = Gauge(
    "learnflow_projection_lag_seconds",
    "Age of the oldest event the active read models have not applied; 0 when caught up.",
    registry=REGISTRY,
)
PROJECTION_LAG_EVENTS = Gauge(
    "learnflow_projection_lag_events",
    "Events in the log after the read models' checkpoint (counted up to 100000).",
    registry=REGISTRY,
)
PROJECTION_CHECKPOINT = Gauge(
    "learnflow_projection_checkpoint_position",
    "Event-log position of the active read models' checkpoint.",
    registry=REGISTRY,
)
PROJECTOR_LEADER = Gauge(
    "learnflow_projector_leader",
    "1 while this process's projector holds the lock and projects; sum over processes: 1.",
    registry=REGISTRY,
)
PROJECTION_PARKED = Gauge(
    "learnflow_projection_parked_events",
    "Events the projector could not apply and set aside (see `learnflow projections status`).",
    registry=REGISTRY,
)
# Bumped on every cached read: tallies, reported by `_LiveObjects`.
READ_CACHE_HITS = Tally()
READ_CACHE_MISSES = Tally()
READ_CACHE_EVICTIONS = Tally()
QUERY_CACHE_HITS = Counter(
    "learnflow_query_cache_hits",
    "List-query results (a catalog page) served from the query cache.",
    registry=REGISTRY,
)
QUERY_CACHE_MISSES = Counter(
    "learnflow_query_cache_misses",
    "List queries the query cache sent to the store.",
    registry=REGISTRY,
)
QUERY_CACHE_SHARED = Counter(
    "learnflow_query_cache_shared",
    "List queries answered by the same query already in flight for another caller.",
    registry=REGISTRY,
)
QUERY_CACHE_EVICTIONS = Counter(
    "learnflow_query_cache_evictions",
    "Query-cache entries dropped to stay within query_cache_entries (least recently used).",
    registry=REGISTRY,
)
RATE_LIMIT_REFUSALS = Counter(
    "learnflow_rate_limit_refusals",
    "Calls refused by a rate limit, by class (read, write, auth, infra) or login/quiz budget.",
    ["rate_class"],
    registry=REGISTRY,
)
CONSISTENCY_WAITS = Counter(
    "learnflow_consistency_waits",
    "Queries carrying a consistency token, by outcome: served, timeout (UNAVAILABLE), "
    "refused (too many waiting), invalid (a token no command returned), error.",
    ["outcome"],
    registry=REGISTRY,
)
CONSISTENCY_WAIT_SECONDS = Histogram(
    "learnflow_consistency_wait_seconds",
    "Time a query with a consistency token spent until its read models included it.",
    buckets=_WAIT_BUCKETS,
    registry=REGISTRY,
)
EMAIL_KINDS = ("password_reset", "email_verification", "registration_attempt")
EMAILS_SENT = Counter(
    "learnflow_emails_sent",
    "Mail accepted by the SMTP server, by kind.",
    ["kind"],
    registry=REGISTRY,
)
EMAILS_FAILED = Counter(
    "learnflow_emails_failed",
    "Failed delivery attempts by kind and outcome: retry (tried again later) or gave_up "
    "(the job is marked failed).",
    ["kind", "outcome"],
    registry=REGISTRY,
)
EMAIL_QUEUE = Gauge(
    "learnflow_email_jobs",
    "Jobs of the mail outbox by state: queued (not yet delivered) and failed (gave up).",
    ["state"],
    registry=REGISTRY,
)

CONSISTENCY_OUTCOMES = ("served", "timeout", "refused", "invalid", "error")
for _kind in EMAIL_KINDS:  # every series shows, at 0 until it happens
    EMAILS_SENT.labels(kind=_kind)
    for _mail_outcome in ("retry", "gave_up"):
        EMAILS_FAILED.labels(kind=_kind, outcome=_mail_outcome)
for _state in ("queued", "failed"):
    EMAIL_QUEUE.labels(state=_state)
for _outcome in CONSISTENCY_OUTCOMES:  # every outcome shows, at 0 until it happens
    CONSISTENCY_WAITS.labels(outcome=_outcome)
for _class in ("read", "write", "auth", "infra"):
    RATE_LIMIT_REFUSALS.labels(rate_class=_class)


class _Sized(Protocol):
    def __len__(self) -> int: ...


class _Pool(Protocol):
    def checkedout(self) -> int: ...

    def checkedin(self) -> int: ...


class _LiveObjects(Collector):
    """Gauges read at scrape time from the objects the process holds open."""

    def __init__(self) -> None:
        self.caches: weakref.WeakSet[Any] = weakref.WeakSet()
        self.query_caches: weakref.WeakSet[Any] = weakref.WeakSet()
        self.pools: weakref.WeakSet[Any] = weakref.WeakSet()

    def collect(self) -> Iterator[Metric]:
        for name, text, tally in (
            ("hits", "Read-model documents served from the cache.", READ_CACHE_HITS),
            (
                "misses",
                "Read-model documents fetched from the store by the cache.",
                READ_CACHE_MISSES,
            ),
            (
                "evictions",
                "Cache entries dropped to stay within read_cache_docs (least recently used).",
                READ_CACHE_EVICTIONS,
            ),
        ):
            yield CounterMetricFamily(f"learnflow_read_cache_{name}", text, value=tally.value)
        documents = GaugeMetricFamily(
            "learnflow_read_cache_documents", "Read-model documents held by the read cache."
        )
        documents.add_metric([], float(sum(len(cache) for cache in list(self.caches))))
        yield documents
        entries = GaugeMetricFamily(
            "learnflow_query_cache_entries", "List-query results held by the query cache."
        )
        entries.add_metric([], float(sum(len(cache) for cache in list(self.query_caches))))
        yield entries
        pool = GaugeMetricFamily(
            "learnflow_db_pool_connections",
            "PostgreSQL connections of the SQLAlchemy pool by state (checked_out: in use).",
            labels=["state"],
        )
        pools = list(self.pools)
        pool.add_metric(["checked_out"], float(sum(p.checkedout() for p in pools)))
        pool.add_metric(["idle"], float(sum(p.checkedin() for p in pools)))
        yield pool

    def describe(self) -> Iterable[Metric]:
        return []


_LIVE = _LiveObjects()
REGISTRY.register(_LIVE)


def watch_read_cache(cache: _Sized) -> None:
    """Report `len(cache)` as learnflow_read_cache_documents while `cache` lives."""
    _LIVE.caches.add(cache)


def watch_query_cache(cache: _Sized) -> None:
    """Report `len(cache)` as learnflow_query_cache_entries while `cache` lives."""
    _LIVE.query_caches.add(cache)


def watch_pool(pool: _Pool) -> None:
    """Report `pool`'s connections as learnflow_db_pool_connections while it lives."""
    _LIVE.pools.add(pool)


def rpc_finished(method: str, code: str, seconds: float | None) -> None:
    """One finished call; `seconds` for unary calls (None for streams)."""
    RPC_CALLS.finish(method, code, seconds)


def metrics_text() -> str:
    """The registry in the Prometheus text exposition format."""
    return generate_latest(REGISTRY).decode()


def serve_metrics(listen: str) -> int:
    """Serve the registry over HTTP on `listen` (`host:port`, port 0: any) from a daemon
    thread; returns the port."""
    host, _, port = listen.rpartition(":")
    server, _thread = start_http_server(
        int(port), addr=host.strip("[]") or "0.0.0.0", registry=REGISTRY
    )
    return int(server.server_port)
