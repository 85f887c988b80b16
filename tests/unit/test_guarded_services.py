"""Handlers guarded once at start: every kind of method goes through `intercept`, the table
is looked up by method name and never grows with what clients send."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any

import grpc
import pytest

from learnflow.security.interceptor import ApiInterceptor, GuardedServices, Undecodable


class Recorder:
    """Stands in for the interceptor: notes each call, then runs the handler."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def intercept(
        self, method: Callable[..., Any], request: Any, context: Any, method_name: str
    ) -> Any:
        self.calls.append(method_name)
        result = method(request, context)
        if hasattr(result, "__aiter__"):
            return result
        return await result

    def guard(self, method_name: str, handler: Any) -> Any:
        return ApiInterceptor.guard(self, method_name, handler)  # type: ignore[arg-type]


async def _unary(request: Any, context: Any) -> str:
    return f"unary:{request}"


async def _stream(request: Any, context: Any) -> AsyncIterator[str]:
    for i in range(3):
        yield f"{request}:{i}"


async def _written(request: Any, context: Any) -> None:
    """A streaming handler that writes through `context` and returns None."""
    await context.write("written")


def _decode(data: bytes) -> str:
    if data == b"bad":
        raise ValueError("not a message")
    return data.decode()


KINDS = {
    "unary_unary": grpc.unary_unary_rpc_method_handler(_unary, _decode),
    "stream_unary": grpc.stream_unary_rpc_method_handler(_unary, _decode),
    "unary_stream": grpc.unary_stream_rpc_method_handler(_stream, _decode),
    "stream_stream": grpc.stream_stream_rpc_method_handler(_stream, _decode),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_every_kind_of_method_is_intercepted(kind: str) -> None:
    recorder = Recorder()
    guarded = recorder.guard(f"/s.S/{kind}", KINDS[kind])
    assert guarded.request_streaming == KINDS[kind].request_streaming
    assert guarded.response_streaming == KINDS[kind].response_streaming
    behaviour = getattr(guarded, kind)
    assert behaviour is not None
    if guarded.response_streaming:
        assert [r async for r in behaviour("x", None)] == ["x:0", "x:1", "x:2"]
    else:
        assert await behaviour("x", None) == "unary:x"
    assert recorder.calls == [f"/s.S/{kind}"]
    # The decoder answers a marker instead of raising, so the interceptor can say why.
    assert guarded.request_deserializer(b"ok") == "ok"
    assert isinstance(guarded.request_deserializer(b"bad"), Undecodable)


async def test_a_stream_written_through_the_context_ends_without_items() -> None:
    written: list[str] = []

    async def write(item: str) -> None:
        written.append(item)

    recorder = Recorder()
    guarded = recorder.guard("/s.S/W", grpc.unary_stream_rpc_method_handler(_written))
    assert [r async for r in guarded.unary_stream("x", SimpleNamespace(write=write))] == []
    assert written == ["written"]


def _details(method: str) -> grpc.HandlerCallDetails:
    return SimpleNamespace(method=method, invocation_metadata=())  # type: ignore[return-value]


def test_registered_and_generic_services_are_found_and_unknown_methods_are_not_kept() -> None:
    recorder = Recorder()
    services = GuardedServices(recorder)  # type: ignore[arg-type]
    services.add_registered_method_handlers("s.Registered", {"Get": KINDS["unary_unary"]})
    services.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("s.Generic", {"List": KINDS["unary_stream"]})]
    )
    registered = services.service(_details("/s.Registered/Get"))
    assert registered is not None and registered.unary_unary is not None
    assert services.service(_details("/s.Registered/Get")) is registered  # guarded once
    generic = services.service(_details("/s.Generic/List"))
    assert generic is not None and generic.unary_stream is not None
    assert services.service(_details("/s.Generic/List")) is generic
    known = len(services._guarded)
    for i in range(1000):
        assert services.service(_details(f"/s.Registered/Nope{i}")) is None
    assert len(services._guarded) == known == 2
