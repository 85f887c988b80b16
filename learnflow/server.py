"""Composition root: wires settings, adapters and handlers into one grpc.aio server.

`learnflow serve` (`learnflow.cli`, the only importer of this module) runs it: the API
services, server reflection, the standard health service (NOT_SERVING while PostgreSQL or
MongoDB is unreachable) and, unless disabled, a projector that stands by for the advisory lock.
SIGTERM/SIGINT stop accepting calls, drain in-flight ones, then exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, cast

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from grpc_reflection.v1alpha._async import ReflectionServicer
from grpc_reflection.v1alpha.reflection_pb2_grpc import add_ServerReflectionServicer_to_server

from learnflow import metrics, tracing
from learnflow.commands.courses import CourseCommands
from learnflow.commands.discussion import DiscussionCommands
from learnflow.commands.identity import IdentityCommands
from learnflow.commands.learning import LearningCommands
from learnflow.dependencies import dependencies_reachable, parked_events, projection_progress
from learnflow.mail.sender import MailSender, queue_counts
from learnflow.projections.projector import Projector, libpq_url
from learnflow.projections.query_cache import QueryCache
from learnflow.projections.read_cache import ReadCache
from learnflow.projections.registry import all_projections
from learnflow.projections.store import ReadStore
from learnflow.projections.watcher import CheckpointWatcher
from learnflow.queries.audit import AuditQueries
from learnflow.queries.catalog import CatalogQueries
from learnflow.queries.certificates import CertificateQueries
from learnflow.queries.discussion import CommentQueries
from learnflow.queries.profiles import ProfileQueries
from learnflow.queries.progress import ProgressQueries
from learnflow.queries.read_models import ReadModels
from learnflow.security.access import api_services, load_rules
from learnflow.security.accounts import AccountStates
from learnflow.security.authentication import Authenticator
from learnflow.security.denial_audit import DenialAudit
from learnflow.security.interceptor import (
    AccessLog,
    ApiInterceptor,
    GuardedServices,
    StreamLimits,
)
from learnflow.security.passwords import PasswordHasher
from learnflow.security.rate_limits import RateLimiter
from learnflow.security.session_cookie import SessionCookie
from learnflow.security.tokens import TokenService, load_keys
from learnflow.settings import Settings
from learnflow.storage.unit_of_work import Database
from learnflow.v1 import (
    audit_pb2_grpc,
    courses_pb2_grpc,
    discussion_pb2_grpc,
    identity_pb2_grpc,
    learning_pb2_grpc,
)

log = logging.getLogger("learnflow.server")

# Health of the read side on its own: NOT_SERVING while events are parked (reads still work,
# but some read models miss what those events changed; the count rides in the trailers) or
# while this process's projector refuses read models ahead of the event log.
READ_SIDE_HEALTH = "learnflow.ReadModels"
PARKED_EVENTS_TRAILER = "x-parked-events"


class Health(HealthServicer):  # type: ignore[misc]  # grpc_health ships no types
    """The standard health service, plus the parked-event count on `READ_SIDE_HEALTH`."""

    parked = 0

    async def Check(self, request: Any, context: Any) -> Any:
        if request.service == READ_SIDE_HEALTH:
            context.set_trailing_metadata(((PARKED_EVENTS_TRAILER, str(self.parked)),))
        return await super().Check(request, context)


@dataclass
class Backend:
    """Everything the server holds open; `close()` releases it."""

    settings: Settings
    db: Database
    store: ReadStore
    tokens: TokenService
    server: grpc.aio.Server
    health: Health
    projector: Projector
    port: int
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    watcher: CheckpointWatcher | None = None
    denials: DenialAudit | None = None
    accounts: AccountStates | None = None
    read_cache: ReadCache | None = None
    query_cache: QueryCache | None = None
    mail_sender: MailSender | None = None
    services: GuardedServices | None = None

    async def close(self, grace_s: float = 10.0) -> None:
        self.stop.set()
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.watcher is not None:
            await self.watcher.close()
        if self.denials is not None:
            await self.denials.flush()
        await self.db.close()
        await self.store.close()


async def build(
    settings: Settings, run_projector: bool = True, reuse_port: bool = False
) -> Backend:
    db = Database.connect(settings.postgres_url)
    stop = asyncio.Event()  # set by Backend.close: the projector, watchers and streams end
    metrics.watch_pool(db.engine.pool)  # type: ignore[arg-type]  # a QueuePool
    store = ReadStore.connect(settings.mongo_url, settings.mongo_database)
    keys = load_keys(settings.signing_keys_dir, generate_if_empty=not settings.is_production)
    tokens = TokenService(
        keys,
        settings.jwt_issuer,
        settings.jwt_audience,
        settings.access_token_ttl_s,
        settings.jwt_leeway_s,
    )
    hasher = await asyncio.to_thread(PasswordHasher, settings.bcrypt_rounds)
    rate_limiter = RateLimiter(settings)
    accounts = AccountStates(db)
    db.account_listeners.append(accounts.forget)  # this process: at commit, not at NOTIFY
    denials = DenialAudit(db, settings.denials_audited_per_minute)
    watcher = CheckpointWatcher(
        store,
        db.event_log_head,
        max_waiters_per_client=settings.consistency_waiters_per_client,
        max_waiters=settings.consistency_waiters_total,
    )
    read_cache = (
        ReadCache(store, max_docs=settings.read_cache_docs, ttl_s=settings.read_cache_ttl_s)
        if settings.read_cache_docs > 0
        else None
    )
    query_cache = (
        QueryCache(store, max_entries=settings.query_cache_entries, ttl_s=settings.read_cache_ttl_s)
        if settings.query_cache_entries > 0
        else None
    )
    read_models = ReadModels(
        store,
        watcher,
        settings.consistency_wait_s,
        read_cache,
        public_max_age_s=settings.public_cache_max_age_s,
        queries=query_cache,
    )
    projector = Projector(
        settings.postgres_url, store, all_projections(), settings.projector_poll_s
    )

    interceptor = ApiInterceptor(
        load_rules(),
        Authenticator(tokens, db, accounts),
        rate_limiter,
        denials=denials,
        access_log=AccessLog(settings.access_log_sample, settings.access_log_slow_ms),
        shutdown=stop,
        streams=StreamLimits(
            settings.streams_per_user,
            settings.stream_max_duration_s,
            settings.stream_recheck_s,
        ),
        trusted_proxies=settings.trusted_proxies,
        health_watch_max_per_client=settings.health_watch_max_per_client,
        health_watch_max_total=settings.health_watch_max_total,
    )
    server = grpc.aio.server(
        options=[
            # Worker processes of `learnflow serve --workers N` share one port (the kernel
            # balances connections); a lone server refuses a second one on its port.
            ("grpc.so_reuseport", 1 if reuse_port else 0),
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            # Many concurrent calls per connection (the gateway's): see gateway/proxy.py.
            ("grpc.optimization_target", "throughput"),
        ],
    )
    # Every service registers on `services`, which guards each method's handler once; the
    # server serves them all through it (see learnflow.security.interceptor). It has the two
    # registration methods generated code calls, not a server's type.
    guarded = GuardedServices(interceptor)
    services = cast(grpc.aio.Server, guarded)
    identity_pb2_grpc.add_IdentityServiceServicer_to_server(
        IdentityCommands(
            db,
            hasher,
            tokens,
            settings.refresh_token_ttl_s,
            rate_limiter,
            SessionCookie(
                name=settings.session_cookie_name,
                max_age_s=settings.refresh_token_ttl_s,
                secure=settings.session_cookie_secure,
            ),
            settings=settings,
        ),
        services,
    )
    identity_pb2_grpc.add_ProfileServiceServicer_to_server(ProfileQueries(read_models), services)
    courses_pb2_grpc.add_CourseServiceServicer_to_server(CourseCommands(db), services)
    learning_pb2_grpc.add_LearningServiceServicer_to_server(
        LearningCommands(db, rate_limiter), services
    )
    discussion_pb2_grpc.add_DiscussionServiceServicer_to_server(DiscussionCommands(db), services)
    courses_pb2_grpc.add_CatalogServiceServicer_to_server(CatalogQueries(read_models), services)
    learning_pb2_grpc.add_ProgressServiceServicer_to_server(
        ProgressQueries(
            read_models,
            watch_poll_s=settings.projector_poll_s,
            heartbeat_s=settings.stream_heartbeat_s,
        ),
        services,
    )
    learning_pb2_grpc.add_CertificateServiceServicer_to_server(
        CertificateQueries(read_models), services
    )
    discussion_pb2_grpc.add_CommentQueryServiceServicer_to_server(
        CommentQueries(read_models), services
    )
    audit_pb2_grpc.add_AuditServiceServicer_to_server(AuditQueries(read_models), services)

    health = Health()
    health_pb2_grpc.add_HealthServicer_to_server(health, services)
    names = [s.full_name for s in api_services()]
    reflected = [
        *names,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    ]
    add_ServerReflectionServicer_to_server(CommentedReflection(reflected), services)
    server.add_generic_rpc_handlers((guarded,))
    port = server.add_insecure_port(settings.grpc_listen)
    if port == 0:
        raise SystemExit(f"cannot listen on {settings.grpc_listen}: address in use?")
    backend = Backend(settings, db, store, tokens, server, health, projector, port, stop=stop)
    backend.watcher = watcher
    backend.denials = denials
    backend.accounts = accounts
    backend.read_cache = read_cache
    backend.query_cache = query_cache
    backend.services = guarded
    await server.start()
    backend.tasks.append(asyncio.create_task(_watch_dependencies(backend, names)))
    backend.tasks.append(
        asyncio.create_task(accounts.listen(libpq_url(settings.postgres_url), backend.stop))
    )
    if run_projector:
        backend.tasks.append(asyncio.create_task(projector.run(backend.stop)))
    if settings.smtp_host:
        # Every server process sends; SKIP LOCKED claims keep them off each other's jobs.
        backend.mail_sender = MailSender(db, settings)
        backend.tasks.append(asyncio.create_task(backend.mail_sender.run(backend.stop)))
    else:
        log.warning("mail sending is off (LEARNFLOW_SMTP_HOST is empty): mail stays queued")
    return backend


def commented_files() -> dict[str, bytes]:
    """The contract's files with source info (comments), from the generated contract.binpb.

    A file is used only where it is the compiled-in one plus comments: a stale descriptor set
    must not make reflection describe another contract than the one served.
    """
    raw = resources.files("learnflow.v1").joinpath("contract.binpb").read_bytes()
    out: dict[str, bytes] = {}
    pool = descriptor_pool.Default()
    for proto in descriptor_pb2.FileDescriptorSet.FromString(raw).file:
        compiled = descriptor_pb2.FileDescriptorProto()
        try:
            pool.FindFileByName(proto.name).CopyToProto(compiled)
        except KeyError:
            continue
        if _structure(proto) != _structure(compiled):
            log.warning("contract.binpb is stale for %s: served without comments", proto.name)
            continue
        compiled.source_code_info.CopyFrom(proto.source_code_info)
        out[proto.name] = compiled.SerializeToString()
    return out


def _structure(proto: descriptor_pb2.FileDescriptorProto) -> bytes:
    """A file without what protoc and the runtime fill in differently (comments, json_name)."""
    bare = descriptor_pb2.FileDescriptorProto()
    bare.CopyFrom(proto)
    bare.ClearField("source_code_info")
    messages = list(bare.message_type)
    for ext in bare.extension:
        ext.ClearField("json_name")
    while messages:
        message = messages.pop()
        for f in (*message.field, *message.extension):
            f.ClearField("json_name")
        messages.extend(message.nested_type)
    return bare.SerializeToString(deterministic=True)


class CommentedReflection(ReflectionServicer):  # type: ignore[misc]
    """Server reflection that serves the contract's files with their comments.

    grpc-python's reflection serializes descriptors from the pool, which keeps no source info;
    the gateway turns comments into OpenAPI summaries and descriptions, so each answer's copy of
    one of our files is swapped for the same file with source info.
    """

    def __init__(self, service_names: list[str]) -> None:
        super().__init__(service_names)
        self._commented = commented_files()

    def _with_comments(self, response: Any) -> Any:
        if response.HasField("file_descriptor_response"):
            files = response.file_descriptor_response.file_descriptor_proto
            for i, raw in enumerate(files):
                name = descriptor_pb2.FileDescriptorProto.FromString(raw).name
                if name in self._commented:
                    files[i] = self._commented[name]
        return response

    def _file_by_filename(self, request: Any, filename: str) -> Any:
        return self._with_comments(super()._file_by_filename(request, filename))

    def _file_containing_symbol(self, request: Any, name: str) -> Any:
        return self._with_comments(super()._file_containing_symbol(request, name))

    def _file_containing_extension(self, request: Any, containing: str, number: int) -> Any:
        return self._with_comments(super()._file_containing_extension(request, containing, number))


async def _watch_dependencies(backend: Backend, services: list[str]) -> None:
    serving = health_pb2.HealthCheckResponse.SERVING
    not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
    last: dict[str, str] | None = None
    while not backend.stop.is_set():
        problems = await dependencies_reachable(backend.db, backend.store)
        status = not_serving if problems else serving
        metrics.PROJECTOR_LEADER.set(1 if backend.projector.is_leader else 0)
        for name in ["", *services]:
            await backend.health.set(name, status)
        if "mongodb" not in problems:
            await _report_parked(backend)
            if "postgres" not in problems:
                await _report_progress(backend)
        if "postgres" not in problems:
            await _report_mail_queue(backend)
        if problems != last:
            if problems:
                log.error(
                    "dependency unreachable: health NOT_SERVING", extra={"problems": problems}
                )
            else:
                log.info("dependencies reachable: health SERVING")
            last = problems
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(backend.stop.wait(), timeout=2.0)


async def _report_parked(backend: Backend) -> None:
    try:
        parked = await parked_events(backend.store)
    except Exception as exc:  # the next round tries again; health already tracks reachability
        log.warning("cannot count parked events: %s", type(exc).__name__)
        return
    if parked != backend.health.parked:
        if parked:
            log.error(
                "read side degraded: %d parked event(s); see `learnflow projections status`", parked
            )
        else:
            log.info("read side: no parked events")
    backend.health.parked = parked
    metrics.PROJECTION_PARKED.set(parked)
    serving = health_pb2.HealthCheckResponse.SERVING
    not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
    # Read models ahead of the event log are not projected into at all (see the projector).
    degraded = parked > 0 or bool(backend.projector.ahead)
    await backend.health.set(READ_SIDE_HEALTH, not_serving if degraded else serving)


async def _report_progress(backend: Backend) -> None:
    """Projection lag and checkpoint, measured from any process: they must show a projector
    that is stuck or gone, so the projector does not report them itself."""
    try:
        progress = await projection_progress(backend.db, backend.store)
    except Exception as exc:  # the next round tries again
        log.warning("cannot measure projection lag: %s", type(exc).__name__)
        return
    metrics.PROJECTION_CHECKPOINT.set(progress.checkpoint.position)
    metrics.PROJECTION_LAG_EVENTS.set(progress.lag_events)
    metrics.PROJECTION_LAG_SECONDS.set(progress.lag_seconds)


async def _report_mail_queue(backend: Backend) -> None:
    """The outbox's depth, from every process whether or not it sends: with mail off the
    queue grows, and that is what the gauge must show."""
    try:
        counts = await queue_counts(backend.db)
    except Exception as exc:  # the next round tries again
        log.warning("cannot count email jobs: %s", type(exc).__name__)
        return
    for state in ("queued", "failed"):
        metrics.EMAIL_QUEUE.labels(state=state).set(counts.get(state, 0))


async def serve(settings: Settings, reuse_port: bool = False) -> None:
    if settings.metrics_listen:
        try:
            port = metrics.serve_metrics(settings.metrics_listen)
        except OSError as exc:
            raise SystemExit(f"cannot serve metrics on {settings.metrics_listen}: {exc}") from None
        log.info("metrics listening", extra={"listen": settings.metrics_listen, "port": port})
    if tracing.configure(settings) is not None:  # before build: it instruments the clients
        log.info(
            "tracing on",
            extra={"exporter": settings.tracing, "sample_ratio": settings.trace_sample_ratio},
        )
    backend = await build(settings, reuse_port=reuse_port)
    log.info("gRPC server listening", extra={"listen": settings.grpc_listen, "port": backend.port})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down: draining in-flight calls")
    await backend.close(grace_s=10.0)
    # Export the spans still buffered (a thread flush; bounded by the exporter's timeout).
    await asyncio.to_thread(tracing.shutdown)
    log.info("stopped")
