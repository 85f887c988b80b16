"""The server's interceptor: call context, authentication, authorization, rate limits, errors.

One interceptor rather than a chain: the call context lives in a contextvar that must be set
in the task that runs the handler, including while a server stream is iterated, and one place
makes that easy to see. It wraps every method's handler once, at start (`GuardedServices`),
instead of going through grpc.aio's `interceptors=` hook, which runs the interceptor chain as a
coroutine on every call and builds a new handler for each: a pass-through interceptor there
cost 2-6 % of a constant reply's throughput (`bench/interception.py`, 7 rounds), a wrapped
handler nothing measurable.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.message import Message
from google.rpc import status_pb2
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from learnflow import metrics, tracing
from learnflow.context import CallContext, add_trailing_metadata, current_call, reset_call, set_call
from learnflow.errors import (
    DomainError,
    FieldViolation,
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    internal_status,
)
from learnflow.security.access import MethodRule, api_services
from learnflow.security.addresses import client_address, parse_networks, peer_host, request_id
from learnflow.security.authentication import Authenticator
from learnflow.security.denial_audit import DenialAudit
from learnflow.security.denials import (
    REASON_TOKEN_INVALID,
    REASON_TOKEN_REQUIRED,
    AccessUnauthenticated,
    RoleNotAllowed,
)
from learnflow.security.field_limits import RequestLimits
from learnflow.security.rate_limits import RateLimiter
from learnflow.storage.outages import unreachable_database
from learnflow.values import nul_text_violations

log = logging.getLogger("learnflow.rpc")


def _metadata(
    context: grpc.aio.ServicerContext[Any, Any],
) -> tuple[dict[str, str], tuple[str, ...]]:
    """The call's text metadata by lower-case key (the last value of a repeated key), and every
    X-Forwarded-For value in order. One pass: grpc builds the metadata tuples anew on each
    `invocation_metadata()`."""
    result: dict[str, str] = {}
    forwarded: list[str] = []
    for key, value in context.invocation_metadata() or ():
        if not key.endswith("-bin"):
            key = key.lower()
            text = value if isinstance(value, str) else value.decode("latin-1")
            result[key] = text
            if key == "x-forwarded-for":
                forwarded.append(text)
    return result, tuple(forwarded)


HEALTH_WATCH = "/grpc.health.v1.Health/Watch"
# Client addresses are remembered for X-Forwarded-For values up to this long (a proxy chain
# of a few hops), so the memo stays within 4,096 small keys whatever clients send.
_MEMO_FORWARDED_CHARS = 256
REQUEST_ID = "x-request-id"
LOOPBACK = ("127.0.0.0/8", "::1/128")


class Undecodable:
    """Stands in for a request message that does not parse (see `_tolerant`)."""


def _tolerant(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    # grpc.aio turns an exception raised by a request deserializer into UNKNOWN carrying the
    # decoder's text; a marker lets the interceptor answer INVALID_ARGUMENT instead.
    def wrapper(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception:
            return Undecodable()

    return wrapper


def _undecodable() -> InvalidArgument:
    return InvalidArgument(
        [FieldViolation("", "the request is not a valid serialized protobuf message")],
        "invalid argument: the request message cannot be decoded",
    )


async def _checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        if isinstance(request, Undecodable):
            raise _undecodable()
        yield request


class StreamSlots:
    """Counts open streams per client and in total; `acquire` refuses beyond the caps."""

    def __init__(self, per_client: int, total: int) -> None:
        self.per_client = per_client
        self.total = total
        self.open: Counter[str] = Counter()

    def acquire(self, client: str) -> None:
        if self.open[client] >= self.per_client or self.open.total() >= self.total:
            raise ResourceExhausted("too many concurrent health watch streams", 5.0)
        self.open[client] += 1

    def release(self, client: str) -> None:
        self.open[client] -= 1
        if self.open[client] <= 0:
            del self.open[client]


@dataclass(frozen=True)
class AccessLog:
    sample: float = 1.0  # share of fast successful calls logged (0..1)
    slow_ms: float = 250.0  # calls at least this slow are always logged


@dataclass(frozen=True)
class StreamLimits:
    per_subject: int = 4  # open server streams per user (or client address)
    max_duration_s: float = 3600.0
    recheck_s: float = 0.5  # how often a stream re-checks its session


class ApiInterceptor:
    def __init__(
        self,
        rules: dict[str, MethodRule],
        authenticator: Authenticator,
        rate_limiter: RateLimiter,
        denials: DenialAudit | None = None,
        streams: StreamLimits | None = None,
        limits: RequestLimits | None = None,
        *,
        access_log: AccessLog | None = None,
        shutdown: asyncio.Event | None = None,
        trusted_proxies: Iterable[str] = LOOPBACK,
        health_watch_max_per_client: int = 4,
        health_watch_max_total: int = 100,
    ) -> None:
        self.rules = rules
        self.authenticator = authenticator
        self.rate_limiter = rate_limiter
        self.denials = denials
        self.streams = streams or StreamLimits()
        self.access_log = access_log or AccessLog()
        # Set when the server starts shutting down: open streams end at once instead of
        # holding the drain for its whole grace period.
        self.shutdown = shutdown or asyncio.Event()
        self._open_streams: Counter[str] = Counter()
        # Compiled at start from the contract; refuses to start on an unbounded request field.
        self.limits = limits if limits is not None else RequestLimits(api_services())
        self.trusted_proxies = parse_networks(trusted_proxies)
        # Who the client is depends only on (X-Forwarded-For, peer): a handful of pairs in
        # practice (the gateways, and their clients), while parsing them as IP addresses cost
        # a fifth of this interceptor's time per call. Bounded: a client sending a new
        # X-Forwarded-For on every call only evicts older entries.
        self._resolve_address = functools.lru_cache(maxsize=4096)(self._address_of)
        self.watch_slots = StreamSlots(health_watch_max_per_client, health_watch_max_total)

    def guard(
        self, method_name: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """`handler` with every call going through `intercept` first. Its request decoder
        answers a marker instead of raising (see `_tolerant`)."""
        decode = handler.request_deserializer
        decode = _tolerant(decode) if decode is not None else None
        encode = handler.response_serializer
        intercept = self.intercept
        inner: Callable[..., Any] | None = handler.unary_unary or handler.stream_unary
        if inner is not None:

            async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                return await intercept(inner, request, context, method_name)

            if handler.unary_unary is not None:
                return grpc.unary_unary_rpc_method_handler(unary, decode, encode)
            return grpc.stream_unary_rpc_method_handler(unary, decode, encode)
        streaming = handler.unary_stream or handler.stream_stream
        if streaming is None:
            raise ValueError(f"{method_name}: a method handler without an implementation")

        async def stream(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            # A handler written with `context.write` returns None rather than an iterator.
            responses = await intercept(streaming, request, context, method_name)
            if responses is not None:
                async for response in responses:
                    yield response

        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(stream, decode, encode)
        return grpc.stream_stream_rpc_method_handler(stream, decode, encode)

    async def intercept(
        self,
        method: Callable[..., Any],
        request_or_iterator: Any,
        context: grpc.aio.ServicerContext[Any, Any],
        method_name: str,
    ) -> Any:
        started = time.perf_counter()
        metadata, forwarded = _metadata(context)
        call = CallContext(
            method=method_name,
            request_id=request_id(metadata.get(REQUEST_ID, "")),
            client_address=self._client_address(forwarded, context.peer()),
            consistency_token=metadata.get("x-consistency-token", ""),
        )
        token = set_call(call)
        span: Span | None = None
        span_token: object = None
        tracer = tracing.tracer()
        if tracer is not None and not method_name.startswith(_UNTRACED):
            span = _rpc_span(tracer, method_name, metadata, call.request_id)
            span_token = otel_context.attach(trace.set_span_in_context(span))
        watching = False
        metrics.CALLS_IN_FLIGHT.value += 1
        in_flight = True  # until a stream takes over the count
        try:
            call = await self._admit(call, metadata)
            set_call(call)
            if isinstance(request_or_iterator, Undecodable):
                raise _undecodable()
            if isinstance(request_or_iterator, Message):
                # Sizes first: O(1) per field, so the NUL scan below and the handler only
                # ever walk collections within their declared limits. A flat request that
                # is plainly within them (most reads) skips both.
                if not self.limits.plainly_valid(request_or_iterator):
                    violations = self.limits.violations(request_or_iterator)
                    if not violations:
                        violations = nul_text_violations(request_or_iterator)
                    if violations:
                        raise InvalidArgument(violations)
            elif hasattr(request_or_iterator, "__aiter__"):
                request_or_iterator = _checked(request_or_iterator)
            if call.method == HEALTH_WATCH:
                self.watch_slots.acquire(call.client_address)
                watching = True
            result = method(request_or_iterator, context)
            if inspect.isasyncgen(result):
                # A stream's caller learns its request id at once, in the headers.
                await context.send_initial_metadata(((REQUEST_ID, call.request_id),))
                authorization = metadata.get("authorization", "")
                stream = self._stream(result, call, context, started, authorization, watching, span)
                watching = False  # the stream releases its slot when it ends
                in_flight = False  # and leaves the in-flight count
                span = None  # and ends the span
                return stream
            response = await result
            _echo_request_id(context, call.request_id)
            self._log(call, "OK", started)
            return response
        except Exception as exc:
            await self._fail(exc, current_call(), context, started)
        finally:
            if in_flight:
                metrics.CALLS_IN_FLIGHT.value -= 1
            if watching:
                self.watch_slots.release(call.client_address)
            if span_token is not None:
                if span is not None:
                    span.end()
                otel_context.detach(span_token)  # type: ignore[arg-type]
            reset_call(token)

    async def _admit(self, call: CallContext, metadata: dict[str, str]) -> CallContext:
        rule = self.rules.get(call.method)
        if rule is None:  # reflection and health: public, rate-limited per client address
            await self.rate_limiter.hit("infra", f"addr:{call.client_address}")
            return call
        authorization = metadata.get("authorization", "")
        principal = None
        if authorization:
            try:
                principal = await self.authenticator.authenticate(authorization)
            except Unauthenticated as exc:
                raise AccessUnauthenticated(
                    exc.message, REASON_TOKEN_INVALID, call.method
                ) from None
        if principal is None and not rule.public:
            raise AccessUnauthenticated(
                "this method requires an access token", REASON_TOKEN_REQUIRED, call.method
            )
        call = CallContext(
            method=call.method,
            request_id=call.request_id,
            client_address=call.client_address,
            principal=principal,
            consistency_token=call.consistency_token,
        )
        set_call(call)  # a refusal below is audited with the caller it refused
        if rule.roles and (principal is None or principal.role not in rule.roles):
            raise RoleNotAllowed("your role may not call this method", call.method, rule.roles)
        subject = principal.subject if principal else f"addr:{call.client_address}"
        await self.rate_limiter.hit(rule.rate_class, subject)
        return call

    async def _stream(
        self,
        stream: AsyncIterator[Any],
        call: CallContext,
        context: grpc.aio.ServicerContext[Any, Any],
        started: float,
        authorization: str,
        watching: bool = False,
        span: Span | None = None,
    ) -> AsyncIterator[Any]:
        """A server stream, guarded: at most `streams.per_subject` open per caller; it ends
        UNAUTHENTICATED within `streams.recheck_s` of its session ending (logout everywhere,
        the account disabled, the access token expired) and cleanly after `max_duration_s`."""
        token = set_call(call)
        # The RPC's span lives as long as the stream; current while it runs, for its children.
        span_token = otel_context.attach(trace.set_span_in_context(span)) if span else None
        subject = call.principal.subject if call.principal else f"addr:{call.client_address}"
        limits = self.streams
        admitted = False
        pending: asyncio.Future[Any] | None = None
        stopping: asyncio.Future[Any] | None = None
        try:
            if self._open_streams[subject] >= limits.per_subject:
                raise ResourceExhausted(
                    f"at most {limits.per_subject} streams may be open at once; close one first",
                    retry_after_s=1,
                )
            self._open_streams[subject] += 1
            admitted = True
            expires_at = self.authenticator.expiry(authorization) if authorization else None
            ends_at = time.monotonic() + limits.max_duration_s
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(anext(stream))
                wait_s = min(limits.recheck_s, ends_at - time.monotonic())
                if expires_at is not None:
                    wait_s = min(wait_s, expires_at - time.time())
                if stopping is None:
                    stopping = asyncio.ensure_future(self.shutdown.wait())
                done, _ = await asyncio.wait({pending, stopping}, timeout=max(wait_s, 0))
                if stopping in done and pending not in done:
                    break  # the server is shutting down: end cleanly, clients reconnect
                if pending in done:
                    try:
                        item = pending.result()
                    except StopAsyncIteration:
                        break
                    pending = None
                    yield item
                    continue
                if time.monotonic() >= ends_at:
                    break  # a long-lived stream ends cleanly; clients reconnect
                if expires_at is not None and time.time() >= expires_at:
                    raise Unauthenticated("the access token expired; refresh it and reconnect")
                if authorization:
                    await self.authenticator.authenticate(authorization)  # revoked/disabled
            self._log(call, "OK", started, streaming=True)
        except Exception as exc:
            await self._fail(exc, current_call(), context, started, streaming=True)
        finally:
            metrics.CALLS_IN_FLIGHT.value -= 1
            if stopping is not None and not stopping.done():
                stopping.cancel()
            if pending is not None:
                # Retrieve its outcome even when it finished on its own meanwhile (the stream's
                # end, StopAsyncIteration, racing a cancellation): else asyncio logs "Task
                # exception was never retrieved".
                if not pending.done():
                    pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]
            if admitted:
                self._open_streams[subject] -= 1
                if self._open_streams[subject] <= 0:
                    del self._open_streams[subject]
            if watching:
                self.watch_slots.release(call.client_address)
            if span is not None:
                span.end()
            if span_token is not None:
                otel_context.detach(span_token)
            reset_call(token)

    async def _fail(
        self,
        exc: Exception,
        call: CallContext,
        context: grpc.aio.ServicerContext[Any, Any],
        started: float,
        streaming: bool = False,
    ) -> None:
        if isinstance(exc, grpc.aio.AbortError):
            code = context.code()  # set by the abort
            name = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
            self._log(call, name, started, streaming=streaming)
            raise exc
        unreachable = unreachable_database(exc)
        if unreachable is not None:
            # A database restarting or away (the health service says NOT_SERVING meanwhile):
            # retryable, and no bug to report with a request id.
            exc = Unavailable(f"{unreachable} is unreachable; retry shortly", retry_after_s=1)
        if isinstance(exc, DomainError):
            status = exc.to_status()
            self._log(call, exc.code.name, started, error=exc.message, streaming=streaming)
            if isinstance(exc, PermissionDenied) and self.denials is not None:
                await self.denials.record(call, exc.message)
        else:
            log.exception("unhandled error in %s", call.method)
            status = internal_status(call.request_id)
            self._log(call, "INTERNAL", started, error=type(exc).__name__, streaming=streaming)
        await _abort(context, status, call.request_id)

    def _client_address(self, forwarded: tuple[str, ...], peer: str) -> str:
        # Only trusted proxies (by default the local gateway) may say who the client is.
        if sum(len(value) for value in forwarded) > _MEMO_FORWARDED_CHARS:
            return self._address_of(forwarded, peer)  # not kept: a key that large is abuse
        return self._resolve_address(forwarded, peer)

    def _address_of(self, forwarded: tuple[str, ...], peer: str) -> str:
        return client_address(forwarded, peer_host(peer), self.trusted_proxies)

    def _log(
        self,
        call: CallContext,
        code: str,
        started: float,
        error: str = "",
        streaming: bool = False,
    ) -> None:
        """The call's metrics, and its log line: always for a failure or a slow call, for a
        sample of the fast successful ones (the metrics count them all; a JSON line per read
        would cost as much as the read)."""
        seconds = time.perf_counter() - started
        metrics.rpc_finished(call.method, code, None if streaming else seconds)
        if tracing.tracer() is not None:
            _span_outcome(trace.get_current_span(), code, error)
        access = self.access_log
        if (
            code == "OK"
            and seconds * 1000 < access.slow_ms
            and (access.sample <= 0 or random.random() >= access.sample)
        ):
            return
        extra: dict[str, Any] = {
            "rpc": call.method,
            "code": code,
            "ms": round(seconds * 1000, 2),
            "client": call.client_address,
        }
        if call.principal:
            extra["user_id"] = call.principal.user_text
        if error:
            extra["error"] = error
        log.info("rpc", extra=extra)


if TYPE_CHECKING:
    _GenericHandler = grpc.GenericRpcHandler[Any, Any]
else:  # not subscriptable at run time
    _GenericHandler = grpc.GenericRpcHandler


class GuardedServices(_GenericHandler):
    """Every service of the server, each method's handler guarded once by the interceptor.

    Services register here as on a server (it has the two methods generated
    `add_…_to_server` functions call) and the server gets this one generic handler, which
    finds a call's guarded handler by a dict look-up. A method no service answers gets None
    (UNIMPLEMENTED), and is not remembered: only methods some service answers are, so the
    table is bounded by the contract, not by what clients send."""

    def __init__(self, interceptor: ApiInterceptor) -> None:
        self.interceptor = interceptor
        self._generic: list[grpc.GenericRpcHandler[Any, Any]] = []
        self._guarded: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    def add_generic_rpc_handlers(
        self, handlers: Iterable[grpc.GenericRpcHandler[Any, Any]]
    ) -> None:
        self._generic.extend(handlers)

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        for name, handler in handlers.items():
            method = f"/{service}/{name}"
            self._guarded[method] = self.interceptor.guard(method, handler)

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method = handler_call_details.method
        guarded = self._guarded.get(method)
        if guarded is not None:
            return guarded
        for generic in self._generic:  # services registered without method tables
            handler = generic.service(handler_call_details)
            if handler is not None:
                guarded = self._guarded[method] = self.interceptor.guard(method, handler)
                return guarded
        return None


# Probes and reflection (health checks every few seconds, the gateway's contract reloads):
# no traces of their own.
_UNTRACED = ("/grpc.health.", "/grpc.reflection.")

# Server-side failures, per the RPC semantic conventions; the rest are the caller's doing and
# leave the span's status unset.
_SERVER_ERRORS = frozenset(
    {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"}
)


def _rpc_span(tracer: trace.Tracer, method: str, metadata: dict[str, str], request_id: str) -> Span:
    """The SERVER span of one RPC, a child of the caller's `traceparent` when it sends a
    valid one (anything else starts a new trace: the propagator ignores malformed values)."""
    service, _, name = method.lstrip("/").rpartition("/")
    return tracer.start_span(
        method.lstrip("/"),
        context=tracing.PROPAGATOR.extract(metadata),
        kind=SpanKind.SERVER,
        attributes={
            "rpc.system": "grpc",
            "rpc.service": service,
            "rpc.method": name,
            "learnflow.request_id": request_id,
        },
    )


def _span_outcome(span: Span, code: str, error: str) -> None:
    if not span.is_recording():
        return
    status = grpc.StatusCode[code] if code in grpc.StatusCode.__members__ else None
    span.set_attribute("rpc.grpc.status_code", status.value[0] if status else 2)
    if code in _SERVER_ERRORS:
        span.set_status(Status(StatusCode.ERROR, error or code))
        span.set_attribute("error.type", code)


def _echo_request_id(context: grpc.aio.ServicerContext[Any, Any], request_id: str) -> None:
    """The call's request id back to the caller, in the trailers of a unary call: initial
    metadata of its own would be a separate batch (and HEADERS frame) before the handler runs,
    the largest single cost of a cached read. Added to what the handler set there."""
    add_trailing_metadata(context, (REQUEST_ID, request_id))


async def _abort(
    context: grpc.aio.ServicerContext[Any, Any], status: status_pb2.Status, request_id: str
) -> None:
    context.set_trailing_metadata(
        (("grpc-status-details-bin", status.SerializeToString()), (REQUEST_ID, request_id))
    )
    await context.abort(_CODES.get(status.code, grpc.StatusCode.INTERNAL), status.message)


_CODES = {code.value[0]: code for code in grpc.StatusCode}
