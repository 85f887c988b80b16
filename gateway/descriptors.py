"""Load the backend's contract (files, services) through gRPC server reflection.

The gateway has no compiled-in knowledge of the backend: everything it serves comes from the
FileDescriptorProtos fetched here and built into a private DescriptorPool.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import ServiceDescriptor
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

log = logging.getLogger("gateway.descriptors")

# grpc-stubs does not declare the end-of-stream sentinel.
EOF: object = grpc.aio.EOF  # type: ignore[attr-defined]

# Infrastructure services every gRPC server may expose; they have no HTTP mapping of their own.
SKIPPED_SERVICES = frozenset(
    {
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
        "grpc.health.v1.Health",
    }
)


class ReflectionError(Exception):
    """The backend's reflection service did not give a usable answer."""


@dataclass(frozen=True)
class Schema:
    """One consistent snapshot of the backend's contract."""

    pool: descriptor_pool.DescriptorPool
    services: tuple[ServiceDescriptor, ...]
    # In dependency order, so a consumer can rebuild the pool from them.
    files: tuple[descriptor_pb2.FileDescriptorProto, ...]
    fingerprint: str


class _ReflectionSession:
    """One bidirectional ServerReflectionInfo stream: ask a question, read its answer."""

    def __init__(self, channel: grpc.aio.Channel, timeout: float) -> None:
        stub: Any = reflection_pb2_grpc.ServerReflectionStub(channel)
        self._call: Any = stub.ServerReflectionInfo(timeout=timeout)

    async def ask(self, **question: str) -> Any:
        await self._call.write(reflection_pb2.ServerReflectionRequest(**question))
        answer = await self._call.read()
        if answer is EOF:
            raise ReflectionError("reflection stream closed early")
        if answer.HasField("error_response"):
            err = answer.error_response
            raise ReflectionError(
                f"reflection refused {question}: {err.error_code} {err.error_message}"
            )
        return answer

    async def close(self) -> None:
        # Bounded: against a server that went away, half-closing the stream may never finish,
        # and a shutdown waiting on it would hang. `asyncio.timeout`, not `wait_for`: on 3.11
        # `wait_for` drops a cancellation that arrives as its inner call completes, and this
        # runs in `finally` blocks that a cancellation passes through. A failing half-close
        # must not replace the exception (or cancellation) that brought us here either.
        try:
            async with asyncio.timeout(1.0):
                await self._call.done_writing()
        except Exception:  # best effort: the call is cancelled just below
            pass
        finally:
            self._call.cancel()


async def fetch_contract(
    channel: grpc.aio.Channel, *, rpc_timeout: float = 10.0
) -> tuple[list[str], dict[str, descriptor_pb2.FileDescriptorProto]]:
    """Return the served service names and every file they need, keyed by file name."""
    session = _ReflectionSession(channel, rpc_timeout)
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}

    def absorb(answer: Any) -> None:
        for raw in answer.file_descriptor_response.file_descriptor_proto:
            proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
            files.setdefault(proto.name, proto)

    try:
        listing = await session.ask(list_services="")
        names = sorted(
            s.name for s in listing.list_services_response.service if s.name not in SKIPPED_SERVICES
        )
        for name in names:
            absorb(await session.ask(file_containing_symbol=name))
        # grpc-python answers with the transitive closure, other servers only with the file
        # itself: ask by name for whatever dependency is still missing.
        while missing := sorted(
            {dep for f in files.values() for dep in f.dependency if dep not in files}
        ):
            for dep in missing:
                absorb(await session.ask(file_by_filename=dep))
                if dep not in files:
                    raise ReflectionError(f"reflection did not return {dep}")
    finally:
        await session.close()
    return names, files


def _dependency_order(
    files: dict[str, descriptor_pb2.FileDescriptorProto],
) -> list[descriptor_pb2.FileDescriptorProto]:
    ordered: list[descriptor_pb2.FileDescriptorProto] = []
    state: dict[str, bool] = {}  # False while visiting, True once emitted

    def visit(name: str) -> None:
        if state.get(name) is True:
            return
        if state.get(name) is False:
            raise ReflectionError(f"import cycle through {name}")
        state[name] = False
        for dep in files[name].dependency:
            visit(dep)
        state[name] = True
        ordered.append(files[name])

    for name in sorted(files):
        visit(name)
    return ordered


def fingerprint(files: Iterable[descriptor_pb2.FileDescriptorProto]) -> str:
    digest = hashlib.sha256()
    for proto in sorted(files, key=lambda f: f.name):
        data = proto.SerializeToString(deterministic=True)
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def build_schema(
    service_names: Iterable[str], files: dict[str, descriptor_pb2.FileDescriptorProto]
) -> Schema:
    pool = descriptor_pool.DescriptorPool()
    ordered = _dependency_order(files)
    for proto in ordered:
        pool.AddSerializedFile(proto.SerializeToString())
    services = tuple(pool.FindServiceByName(name) for name in service_names)
    return Schema(
        pool=pool, services=services, files=tuple(ordered), fingerprint=fingerprint(ordered)
    )


class DescriptorLoader:
    """Keeps the current Schema and tells listeners when the backend's contract changes."""

    def __init__(self, channel: grpc.aio.Channel, *, rpc_timeout: float = 10.0) -> None:
        self._channel = channel
        self._rpc_timeout = rpc_timeout
        self._schema: Schema | None = None
        self._listeners: list[Callable[[Schema], None]] = []
        # Serialises reloads so a periodic check and an admin request cannot interleave.
        self._lock = asyncio.Lock()

    @property
    def schema(self) -> Schema | None:
        return self._schema

    def subscribe(self, listener: Callable[[Schema], None]) -> None:
        self._listeners.append(listener)

    async def fetch(self) -> Schema:
        names, files = await fetch_contract(self._channel, rpc_timeout=self._rpc_timeout)
        return build_schema(names, files)

    async def reload(self) -> bool:
        """Fetch the contract again; install it and return True when it changed."""
        async with self._lock:
            schema = await self.fetch()
            if self._schema is not None and schema.fingerprint == self._schema.fingerprint:
                return False
            self._schema = schema
            log.info(
                "loaded %d services (%s)",
                len(schema.services),
                schema.fingerprint[:12],
                extra={"services": [s.full_name for s in schema.services]},
            )
            for listener in self._listeners:
                listener(schema)
            return True

    async def load_with_retry(
        self,
        *,
        initial_delay: float = 0.1,
        max_delay: float = 5.0,
        deadline: float | None = None,
    ) -> Schema:
        """Retry until the backend answers: the gateway may well start before it."""
        loop = asyncio.get_running_loop()
        give_up_at = None if deadline is None else loop.time() + deadline
        delay = initial_delay
        while True:
            raise_if_cancelling()
            try:
                await self.reload()
            except Exception as exc:  # unreachable backend or an unusable contract: retry
                raise_if_cancelling()
                if give_up_at is not None and loop.time() + delay > give_up_at:
                    raise
                log.warning("backend not ready (%s); retrying in %.1fs", _short(exc), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, max_delay)
                continue
            assert self._schema is not None
            return self._schema

    async def watch(self, interval: float) -> None:
        """Poll for contract changes forever (run as a background task)."""
        while True:
            raise_if_cancelling()
            await asyncio.sleep(interval)
            try:
                await self.reload()
            except Exception as exc:
                raise_if_cancelling()
                # Keep serving the last good contract; the backend may be restarting.
                log.warning("descriptor refresh failed: %s", _short(exc))


def raise_if_cancelling() -> None:
    """Re-raise a cancellation an `except Exception` is about to hide.

    Loops that survive errors must still stop when their task is cancelled, but a cancellation
    can reach them as another exception (a cleanup in a `finally` that failed) or not at all
    (3.11's `wait_for` race). The task still counts the request (`Task.cancelling`).
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _short(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return str(exc)
