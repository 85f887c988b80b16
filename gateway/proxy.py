"""The transcoding proxy: HTTP request -> gRPC call on the backend -> HTTP response."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from gateway import errors, jsonlimits
from gateway.descriptors import EOF, DescriptorLoader, Schema
from gateway.memo import JsonMemo, Printed
from gateway.metadata import (
    GRPC_HEADERS_RESERVE,
    HeaderError,
    HeadersTooLarge,
    IndexedHeaders,
    metadata_size,
    outgoing_metadata,
    pairs,
    parse_grpc_timeout,
    request_id_from,
    response_headers,
    set_raw_header,
)
from gateway.routing import Match, MethodNotAllowed, Route, Router
from gateway.settings import Settings
from gateway.static import StaticSite
from gateway.tickets import TICKET_PARAM, StreamTickets
from gateway.tracing import Tracing, inject
from gateway.transcode import (
    BodyInput,
    TranscodeError,
    build_request,
    response_to_json,
    uses_deprecated_body_mask,
)

log = logging.getLogger("gateway.proxy")

_JSON_MEDIA = "application/json"
_JSON_MEDIA_BYTES = _JSON_MEDIA.encode("latin-1")
_SSE_MEDIA = "text/event-stream"
_NDJSON_MEDIA = "application/x-ndjson"


@dataclass(frozen=True)
class Registry:
    """Everything derived from one Schema, swapped as a unit when the contract changes."""

    schema: Schema
    router: Router
    # JSON of replies seen before (gateway/memo.py); None when turned off.
    memo: JsonMemo | None = None

    @classmethod
    def build(cls, schema: Schema, memo_bytes: int = 0) -> Registry:
        methods: list[MethodDescriptor] = [m for s in schema.services for m in s.methods]
        memo = JsonMemo(memo_bytes) if memo_bytes > 0 else None
        return cls(schema=schema, router=Router.for_methods(methods), memo=memo)


class Gateway:
    """Owns the backend channel, the descriptor loader and the current Registry."""

    def __init__(self, settings: Settings, tracing: Tracing | None = None) -> None:
        self.settings = settings
        self.tracing = tracing
        self._channel: grpc.aio.Channel | None = None
        self._call_channels: list[grpc.aio.Channel] = []
        self.tickets = StreamTickets()
        self._next_channel = 0
        # Multi-callables by (channel, method path): made once, not per request.
        self._unary: dict[tuple[int, str], Any] = {}
        self._loader: DescriptorLoader | None = None
        self.registry: Registry | None = None
        self._loaded = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._listeners: list[Callable[[Registry], None]] = []

    @property
    def channel(self) -> grpc.aio.Channel:
        if self._channel is None:
            raise RuntimeError("gateway not started")
        return self._channel

    def call_channel(self) -> grpc.aio.Channel:
        """The channel for the next API call: round robin over `settings.channels`
        connections, so that server worker processes sharing one address (SO_REUSEPORT, which
        balances connections, not calls) each get a share."""
        if not self._call_channels:
            return self.channel
        self._next_channel = (self._next_channel + 1) % len(self._call_channels)
        return self._call_channels[self._next_channel]

    def unary(self, grpc_path: str) -> Any:
        """The next call channel's multi-callable for `grpc_path`, returning the reply's
        bytes (kept: channels live as long as the gateway, and paths are the contract's)."""
        channel = self.call_channel()
        key = (id(channel), grpc_path)
        found = self._unary.get(key)
        if found is None:
            found = channel.unary_unary(
                grpc_path, request_serializer=_serialize, response_deserializer=None
            )
            self._unary[key] = found
        return found

    @property
    def loader(self) -> DescriptorLoader:
        if self._loader is None:
            raise RuntimeError("gateway not started")
        return self._loader

    def subscribe(self, listener: Callable[[Registry], None]) -> None:
        self._listeners.append(listener)

    def _install(self, schema: Schema) -> None:
        registry = Registry.build(schema, self.settings.response_memo_bytes)
        self.registry = registry
        for listener in self._listeners:
            listener(registry)
        self._loaded.set()

    async def start(self) -> None:
        """Open the channel and load the contract in the background.

        Loading does not block start-up: the gateway answers /healthz at once and 503 on
        API routes until the backend's reflection has answered.
        """
        options: list[tuple[str, Any]] = [
            # grpc's default reconnect backoff grows to 2 minutes; a restarted backend next to
            # the gateway should be picked up within seconds.
            ("grpc.max_reconnect_backoff_ms", 5000),
            # A `dns:///` target naming several servers (a headless Service, a compose
            # service with replicas) gets every address, and calls are spread over them;
            # HTTP/2 connections are long-lived, so pick-first would pin one server.
            ("grpc.lb_policy_name", "round_robin"),
            # gRPC core's HTTP/2 transport tuned for many concurrent calls on one connection
            # (what a gateway is): 3 % less CPU per proxied read, no slower for a lone call.
            ("grpc.optimization_target", "throughput"),
        ]
        self._channel = grpc.aio.insecure_channel(self.settings.grpc_target, options=options)
        # More connections for calls: each channel its own subchannel pool, hence its own
        # connection (channels with equal arguments would otherwise share one).
        self._call_channels = [
            grpc.aio.insecure_channel(
                self.settings.grpc_target,
                options=[*options, ("grpc.use_local_subchannel_pool", 1)],
            )
            for _ in range(self.settings.channels if self.settings.channels > 1 else 0)
        ]
        self._loader = DescriptorLoader(self._channel)
        self._loader.subscribe(self._install)
        self._tasks.append(asyncio.create_task(self._run_loader(), name="gateway-descriptors"))

    async def _run_loader(self) -> None:
        await self.loader.load_with_retry(max_delay=self.settings.startup_max_backoff_s)
        if self.settings.reload_interval_s > 0:
            await self.loader.watch(self.settings.reload_interval_s)

    async def wait_loaded(self, within: float | None = None) -> Registry:
        await asyncio.wait_for(self._loaded.wait(), within)
        assert self.registry is not None
        return self.registry

    async def stop(self) -> None:
        await stop_tasks(self._tasks)
        self._tasks.clear()
        for channel in self._call_channels:
            await channel.close(grace=None)
        self._call_channels = []
        self._unary.clear()
        if self._channel is not None:
            await self._channel.close(grace=None)
            self._channel = None


async def stop_tasks(
    tasks: list[asyncio.Task[None]], *, patience_s: float = 2.0, attempts: int = 3
) -> None:
    """Cancel background tasks and wait for them, never forever: a task that lost one
    cancellation (see `raise_if_cancelling`) is cancelled again; one that still runs after
    every attempt is logged and left behind rather than hanging the shutdown."""
    pending = {task for task in tasks if not task.done()}
    for _ in range(attempts):
        if not pending:
            break
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=patience_s)
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())
    for task in pending:
        log.error("background task %s ignored cancellation; leaving it", task.get_name())


def headers_too_large(message: str) -> errors.HttpError:
    """431 Request Header Fields Too Large, before any gRPC call (whose metadata limit would
    otherwise answer a misleading RESOURCE_EXHAUSTED)."""
    return errors.simple_error(grpc.StatusCode.INVALID_ARGUMENT, message, status=431)


def error_response(err: errors.HttpError, extra: list[tuple[str, str]] | None = None) -> Response:
    response = JSONResponse(err.body, status_code=err.status, headers=err.headers)
    for key, value in extra or ():
        response.headers.append(key, value)
    return response


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def _dumps(payload: Any) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def _raw_path(scope: Scope) -> str:
    raw = scope.get("raw_path")
    if isinstance(raw, bytes):
        # Keep the percent-encoding: the template matcher decodes per segment.
        return raw.decode("latin-1").split("?", 1)[0]
    path: str = scope["path"]
    return path


class GatewayRequest(Request):
    """Starlette's request, its headers read through `IndexedHeaders`."""

    @property
    def headers(self) -> Headers:
        indexed: IndexedHeaders | None = getattr(self, "_indexed_headers", None)
        if indexed is None:
            indexed = self._indexed_headers = IndexedHeaders(scope=self.scope)
        return indexed


class Dispatcher:
    """ASGI app serving every path the fixed endpoints do not claim."""

    def __init__(self, gateway: Gateway, site: StaticSite | None = None) -> None:
        self.gateway = gateway
        self.site = site

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = GatewayRequest(scope, receive)
        try:
            response = await self.handle(request)
        except Exception:
            log.exception("unhandled error for %s %s", request.method, request.url.path)
            response = error_response(
                errors.simple_error(grpc.StatusCode.INTERNAL, "internal gateway error")
            )
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        registry = self.gateway.registry
        if registry is None and (page := await self._page(request)) is not None:
            return page  # the web app loads even while the backend is not up yet
        if registry is None:
            err = errors.simple_error(
                grpc.StatusCode.UNAVAILABLE, "the backend's API description is not loaded yet"
            )
            err.headers["Retry-After"] = "1"
            return error_response(err)
        path = _raw_path(request.scope)
        found = registry.router.match(request.method, path)
        if found is None and (page := await self._page(request)) is not None:
            return page
        if found is None:
            return error_response(
                errors.simple_error(
                    grpc.StatusCode.NOT_FOUND, f"no route for {request.method} {path}"
                )
            )
        if isinstance(found, MethodNotAllowed):
            err = errors.simple_error(
                grpc.StatusCode.UNIMPLEMENTED,
                f"method {request.method} not allowed on {path}",
                status=405,
            )
            err.headers["Allow"] = ", ".join(found.allowed)
            return error_response(err)
        request.state.grpc_method = found.route.grpc_path
        request.state.route = found.route.label  # the metrics' label
        try:
            return await self._call(request, found, registry)
        except (TranscodeError, HeaderError) as exc:
            if isinstance(exc, TranscodeError) and exc.field is not None:
                err = errors.bad_request(
                    exc.message, exc.field, exc.description, status=exc.http_status
                )
            elif isinstance(exc, TranscodeError):
                err = errors.simple_error(exc.code, exc.message, status=exc.http_status)
            elif isinstance(exc, HeadersTooLarge):
                err = headers_too_large(str(exc))
            else:
                err = errors.simple_error(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            return error_response(err)

    async def _page(self, request: Request) -> Response | None:
        if self.site is None or request.method not in ("GET", "HEAD"):
            return None
        return await self.site.serve(request)

    async def _read_body(self, request: Request) -> BodyInput | None:
        limit = self.gateway.settings.max_body_bytes
        too_large = TranscodeError(
            f"request body exceeds {limit} bytes",
            http_status=413,
            code=grpc.StatusCode.RESOURCE_EXHAUSTED,
        )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > limit:
                raise too_large
        if not data.strip():
            return None
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media != _JSON_MEDIA and not (
            media.startswith("application/") and media.endswith("+json")
        ):
            raise TranscodeError(
                f'unsupported content type "{media or "(none)"}"; send application/json',
                http_status=415,
            )
        depth = self.gateway.settings.max_json_depth
        try:
            return BodyInput(jsonlimits.loads(bytes(data), depth))
        except jsonlimits.JsonTooDeep as exc:
            raise TranscodeError(f"request body is {exc}", field="") from None
        except ValueError as exc:
            where = ""
            if isinstance(exc, json.JSONDecodeError):
                where = f" (line {exc.lineno}, column {exc.colno})"
            elif isinstance(exc, UnicodeDecodeError):
                where = " (it is not UTF-8)"
            raise TranscodeError(
                f"request body is not valid JSON{where}",
                field="",
                description=f"is not valid JSON{where}",
            ) from None

    async def _call(self, request: Request, found: Match, registry: Registry) -> Response:
        route = found.route
        if route.method.client_streaming:
            return error_response(
                errors.simple_error(
                    grpc.StatusCode.UNIMPLEMENTED, "client-streaming methods have no HTTP mapping"
                )
            )
        settings = self.gateway.settings
        timeout_header = request.headers.get("grpc-timeout")
        if timeout_header:
            deadline_s: float | None = parse_grpc_timeout(timeout_header)
        elif route.method.server_streaming:
            deadline_s = settings.stream_timeout_s or None
        else:
            deadline_s = settings.default_timeout_s or None
        request_id = getattr(request.state, "request_id", None) or request_id_from(request.headers)
        headers = request.headers
        # Most calls have no query string: no parsing then (Starlette parses one anyway).
        query = request.query_params.multi_items() if request.scope.get("query_string") else []
        if route.method.server_streaming and any(k == TICKET_PARAM for k, _ in query):
            # An EventSource's stream: the ticket stands for the Authorization it cannot send.
            ticket = next(v for k, v in query if k == TICKET_PARAM)
            query = [(k, v) for k, v in query if k != TICKET_PARAM]
            authorization = self.gateway.tickets.redeem(ticket)
            if authorization is None:
                return error_response(
                    errors.simple_error(
                        grpc.StatusCode.UNAUTHENTICATED,
                        "the stream ticket is unknown, used or expired; ask for a new one",
                    )
                )
            raw = [(k, v) for k, v in headers.raw if k.lower() != b"authorization"]
            headers = Headers(raw=[*raw, (b"authorization", authorization.encode("latin-1"))])
        metadata = outgoing_metadata(
            headers,
            request.client.host if request.client else None,
            request_id,
            settings.trusted_proxies,
            settings.forward_cookies,
        )
        if self.gateway.tracing is not None:
            # The request's span is the parent of the backend's (counted in the budget below).
            inject(metadata)
        budget = settings.max_header_bytes - GRPC_HEADERS_RESERVE
        if metadata_size(metadata) > budget:
            raise HeadersTooLarge(f"headers forwarded to the backend exceed {budget} bytes")
        body = await self._read_body(request) if route.body else None
        message = build_request(route, found.params, query, body, registry.schema.pool)
        key = request.headers.get("idempotency-key")
        if key is not None:
            apply_idempotency_key(message, key, settings.idempotency_field)
        # RFC 9745: the request used a form kept for one release only (see the OpenAPI).
        deprecation = [("Deprecation", "true")] if uses_deprecated_body_mask(route, body) else []
        if route.method.server_streaming:
            return await self._stream(request, route, registry, message, deadline_s, metadata)
        # The reply stays bytes: a reply seen before is not even parsed (see `_printed`).
        call: Any = self.gateway.unary(route.grpc_path)(
            message, timeout=deadline_s, metadata=metadata
        )
        try:
            reply: bytes = await call
            initial = pairs(await call.initial_metadata())
            trailing = pairs(await call.trailing_metadata())
        except grpc.aio.AioRpcError as exc:
            return error_response(
                errors.from_rpc_error(
                    exc, registry.schema.pool, route.method.input_type, route.body
                ),
                [
                    *response_headers(
                        pairs(exc.initial_metadata()),
                        pairs(exc.trailing_metadata()),
                        as_headers=settings.metadata_headers,
                    ),
                    *deprecation,
                ],
            )
        printed = _printed(route, reply, registry)
        content, etag, coding = printed.body, printed.etag, []
        if len(content) >= GZIP_MIN_BYTES and accepts_gzip(request.headers.get("accept-encoding")):
            content, etag = printed.gzipped, printed.gzip_etag
            coding = [("Content-Encoding", "gzip")]
        answer_headers = response_headers(initial, trailing, as_headers=settings.metadata_headers)
        answer = encoded_headers([*answer_headers, *deprecation, *coding])
        if request.method == "GET":
            vary = ["Accept-Encoding"] if len(printed.body) >= GZIP_MIN_BYTES else []
            return conditional(
                request.headers.get("if-none-match"),
                content,
                answer,
                etag,
                initial,
                trailing,
                vary=vary,
                same=printed.etag,
            )
        return PreparedResponse(200, content, json_headers(content, answer))

    async def _stream(
        self,
        request: Request,
        route: Route,
        registry: Registry,
        message: Message,
        deadline_s: float | None,
        metadata: list[tuple[str, str | bytes]],
    ) -> Response:
        pool = registry.schema.pool
        settings = self.gateway.settings
        callable_ = self.gateway.call_channel().unary_stream(
            route.grpc_path,
            request_serializer=_serialize,
            response_deserializer=GetMessageClass(route.method.output_type).FromString,
        )
        call: Any = callable_(message, timeout=deadline_s, metadata=metadata)
        try:
            # Wait for the first message so an immediate failure gets a proper HTTP status
            # instead of a 200 followed by an error event.
            first = await call.read()
            initial = pairs(await call.initial_metadata())
        except grpc.aio.AioRpcError as exc:
            call.cancel()
            return error_response(
                errors.from_rpc_error(exc, pool, route.method.input_type, route.body),
                response_headers(
                    pairs(exc.initial_metadata()),
                    pairs(exc.trailing_metadata()),
                    as_headers=settings.metadata_headers,
                ),
            )
        sse = _SSE_MEDIA in request.headers.get("accept", "")
        # Every SSE event carries an id; a reconnecting EventSource sends the last one back
        # (Last-Event-ID) and the numbering goes on from it. The backend's stream starts with
        # the current state, so nothing is lost across the reconnection.
        last = request.headers.get("last-event-id", "")
        event_ids = itertools.count(int(last) + 1 if last.isdigit() and len(last) < 18 else 1)

        def encode(payload: Any) -> str:
            if sse:
                return f"id: {next(event_ids)}\ndata: {_dumps(payload)}\n\n"
            return _dumps(payload) + "\n"

        def encode_error(exc: grpc.aio.AioRpcError) -> str:
            status = errors.from_rpc_error(exc, pool, route.method.input_type, route.body).body
            if sse:
                return f"event: error\ndata: {_dumps(status)}\n\n"
            return _dumps({"error": status}) + "\n"

        async def messages() -> AsyncIterator[str]:
            item = first
            try:
                while item is not EOF:
                    yield encode(response_to_json(route, item, pool))
                    item = await call.read()
            except grpc.aio.AioRpcError as exc:
                # Headers are long gone: the failure becomes the stream's last event.
                yield encode_error(exc)
            finally:
                call.cancel()

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        response = StreamingResponse(
            messages(), media_type=_SSE_MEDIA if sse else _NDJSON_MEDIA, headers=headers
        )
        for key, value in response_headers(initial, as_headers=settings.metadata_headers):
            response.headers.append(key, value)
        return response


def _printed(route: Route, reply: bytes, registry: Registry) -> Printed:
    """The JSON body and ETag of a unary reply, remembered by its bytes."""
    memo = registry.memo
    key = (route.memo_key, reply)
    if memo is not None and (found := memo.get(key)) is not None:
        return found
    message = GetMessageClass(route.method.output_type).FromString(reply)
    body = _dumps(response_to_json(route, message, registry.schema.pool)).encode()
    printed = Printed(body, etag_of(body))
    if memo is not None:
        memo.put(key, printed)
    return printed


def etag_of(body: bytes) -> str:
    """A strong validator: a digest of the body, so it changes exactly when what the client
    would see does."""
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


# Bodies at least this large are gzip-coded for clients that accept it (smaller ones gain
# less than the coding's framing and time).
GZIP_MIN_BYTES = 1024


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether `Accept-Encoding` admits gzip (RFC 9110 12.5.3: by name or `*`, q above 0)."""
    if not accept_encoding or len(accept_encoding) > 512:
        return False
    for part in accept_encoding.split(","):
        name, _, params = part.strip().partition(";")
        if name.strip().lower() not in ("gzip", "x-gzip", "*"):
            continue
        q = params.strip().lower()
        if q.startswith("q="):
            try:
                if float(q[2:]) <= 0:
                    continue
            except ValueError:
                continue
        return True
    return False


class PreparedResponse(Response):
    """A response given its status, body and finished header list (lower-case names and
    values as latin-1 bytes, as Starlette's `Response` keeps them): what `Response(...)` and
    its `headers` make, without building the mapping and its wrapper on every call."""

    def __init__(self, status: int, body: bytes, raw_headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code = status
        self.body = body
        self.background = None
        self.raw_headers = raw_headers


def encoded_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """Headers as `MutableHeaders.append` stores them."""
    return [(key.lower().encode("latin-1"), value.encode("latin-1")) for key, value in headers]


def json_headers(body: bytes, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`Response(body, media_type="application/json")`'s own headers, then `headers`."""
    return [
        (b"content-length", str(len(body)).encode("latin-1")),
        (b"content-type", _JSON_MEDIA_BYTES),
        *headers,
    ]


def conditional(
    if_none_match: str | None,
    body: bytes,
    headers: list[tuple[bytes, bytes]],
    etag: str,
    *metadata: list[tuple[str, str | bytes]],
    vary: list[str] | None = None,
    same: str | None = None,
) -> Response:
    """HTTP caching for a GET's JSON `body` and its `headers` (see `encoded_headers`): the
    `ETag`, `304 Not Modified` when `If-None-Match` names it (or `same`, the validator of the
    same content in another coding), a `Cache-Control` the service chose (response metadata
    `cache-control`) or, by default, `private, no-cache` (a client may keep it, and must ask
    again before using it), and `Vary`: the gateway's own reasons (`vary`) and the request
    headers the service says its answer depends on (response metadata `vary`), so a shared
    cache keeps the variants apart."""
    chosen = "private, no-cache"
    varies = list(vary or ())
    for group in metadata:
        for key, value in group:
            if not isinstance(value, str):
                continue
            if key == "cache-control":
                chosen = value
            elif key == "vary":
                varies.extend(v.strip() for v in value.split(",") if v.strip())
    caching = [(b"etag", etag.encode("latin-1")), (b"cache-control", chosen.encode("latin-1"))]
    if varies:
        caching.append((b"vary", ", ".join(dict.fromkeys(varies)).encode("latin-1")))
    wanted = {tag.strip() for tag in (if_none_match or "").split(",")}
    if etag in wanted or (same is not None and same in wanted) or "*" in wanted:
        for name in (b"x-request-id", b"x-consistency-token"):
            kept = next((value for key, value in headers if key == name), None)
            if kept is not None:
                set_raw_header(caching, name, kept)
        return PreparedResponse(304, b"", caching)
    answer = json_headers(body, headers)
    for name, value in caching:
        set_raw_header(answer, name, value)
    return PreparedResponse(200, body, answer)


_IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def apply_idempotency_key(message: Message, key: str, field: str) -> None:
    """`Idempotency-Key` is another way to send the request's idempotency field (AIP-155's
    `request_id`, by default): the same value in both is fine, different ones are refused, and
    a method that has no such field says so rather than ignoring the header."""
    descriptor = message.DESCRIPTOR.fields_by_name.get(field)
    if descriptor is None or descriptor.type != descriptor.TYPE_STRING:
        raise TranscodeError(
            "this method is not idempotent by key: it takes no Idempotency-Key",
            field="",
            description="Idempotency-Key is not accepted here",
        )
    if not _IDEMPOTENCY_KEY.fullmatch(key):
        raise TranscodeError(
            "Idempotency-Key must be 1 to 128 characters of A-Z, a-z, 0-9, '.', '_', ':' or '-'",
            field="",
            description="is not a valid Idempotency-Key",
        )
    given = getattr(message, field)
    if given and given != key:
        raise TranscodeError(
            f"Idempotency-Key and {field} differ; send one of them",
            field="",
            description=f"differs from {field}",
        )
    setattr(message, field, key)
