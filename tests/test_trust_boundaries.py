"""Trust boundaries of the server: the client address (rightmost untrusted hop, always an IP),
client request ids (strict pattern), undecodable requests, and bounded health/reflection."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2_grpc

from learnflow.security.addresses import client_address, parse_networks, peer_host, request_id
from learnflow.server import build
from learnflow.settings import Settings
from learnflow.v1 import courses_pb2, courses_pb2_grpc, identity_pb2, identity_pb2_grpc
from tests.support import field_violations

LOOPBACK = parse_networks(["127.0.0.0/8", "::1/128"])
PROXIES = parse_networks(["10.0.0.0/8", "127.0.0.1"])


@pytest.mark.parametrize(
    ("forwarded", "peer", "trusted", "expected"),
    [
        # From the local gateway, its one resolved address.
        (["203.0.113.7"], "127.0.0.1", LOOPBACK, "203.0.113.7"),
        # A longer chain: the rightmost hop not appended by a trusted proxy, never the leftmost
        # (which the client wrote itself).
        (["198.51.100.1, 203.0.113.7"], "127.0.0.1", LOOPBACK, "203.0.113.7"),
        (["198.51.100.1, 203.0.113.7, 10.0.0.5"], "127.0.0.1", PROXIES, "203.0.113.7"),
        # Repeated metadata values read as one list.
        (["198.51.100.1", "203.0.113.8"], "127.0.0.1", LOOPBACK, "203.0.113.8"),
        # A caller that is not a trusted proxy cannot name anyone.
        (["203.0.113.7"], "198.51.100.20", LOOPBACK, "198.51.100.20"),
        (["203.0.113.7"], "127.0.0.1", (), "127.0.0.1"),
        # Everything trusted: the leftmost.
        (["127.0.0.1"], "127.0.0.1", LOOPBACK, "127.0.0.1"),
        ([], "127.0.0.1", LOOPBACK, "127.0.0.1"),
        # Not an IP: never used, the peer instead.
        (["<img src=x onerror=alert(1)>"], "127.0.0.1", LOOPBACK, "127.0.0.1"),
        (["203.0.113.7, unknown"], "127.0.0.1", LOOPBACK, "127.0.0.1"),
        (["203.0.113.7:443"], "127.0.0.1", LOOPBACK, "127.0.0.1"),
        (["2001:DB8::7"], "::1", LOOPBACK, "2001:db8::7"),
        # A Unix-socket peer is what it is.
        (["203.0.113.7"], "/run/learnflow.sock", LOOPBACK, "/run/learnflow.sock"),
    ],
)
def test_the_client_address_is_the_rightmost_untrusted_hop(
    forwarded: list[str], peer: str, trusted: tuple[Any, ...], expected: str
) -> None:
    assert client_address(forwarded, peer, trusted) == expected


def test_the_interceptor_remembers_addresses_only_for_short_chains() -> None:
    from learnflow.security.interceptor import ApiInterceptor

    owner: Any = ApiInterceptor.__new__(ApiInterceptor)
    owner.trusted_proxies = parse_networks(["127.0.0.0/8", "10.0.0.0/8"])
    owner._resolve_address = functools.lru_cache(maxsize=4096)(owner._address_of)
    peer = "ipv4:127.0.0.1:5555"
    assert ApiInterceptor._client_address(owner, ("203.0.113.7",), peer) == "203.0.113.7"
    assert owner._resolve_address.cache_info().currsize == 1
    padded = (", ".join(["10.0.0.9"] * 400 + ["203.0.113.8"]),)
    assert ApiInterceptor._client_address(owner, padded, peer) == "203.0.113.8"
    assert owner._resolve_address.cache_info().currsize == 1


def test_peer_strings() -> None:
    assert peer_host("ipv4:127.0.0.1:5555") == "127.0.0.1"
    assert peer_host("ipv6:[::1]:5555") == "::1"
    assert peer_host("unix:/run/x.sock") == "/run/x.sock"


def test_trusted_proxies_must_be_networks() -> None:
    with pytest.raises(ValueError, match="not-a-network"):
        parse_networks(["10.0.0.0/8", "not-a-network"])


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("req-1", True),
        ("a.B_9-z", True),
        ("x" * 64, True),
        ("x" * 65, False),
        ("", False),
        ("<script>alert(1)</script>", False),
        ("a b", False),
        ("line\tbreak", False),
    ],
)
def test_request_ids_must_match_the_strict_pattern(given: str, kept: bool) -> None:
    chosen = request_id(given)
    assert (chosen == given) is kept
    if not kept:
        assert uuid.UUID(hex=chosen)


async def test_the_server_replaces_an_unusable_request_id(channel: grpc.aio.Channel) -> None:
    stub = identity_pb2_grpc.IdentityServiceStub(channel)
    for given, kept in (("given-id.1", True), ("<img src=x>", False), ("y" * 100, False)):
        call: Any = stub.GetSigningKeys(
            identity_pb2.GetSigningKeysRequest(), metadata=(("x-request-id", given),)
        )
        await call
        echoed = dict(await call.trailing_metadata())["x-request-id"]
        assert (echoed == given) is kept
        if not kept:
            assert uuid.UUID(hex=echoed)


@asynccontextmanager
async def server_with(settings: Settings, **changes: Any) -> AsyncIterator[grpc.aio.Channel]:
    """A second in-process server on the session's databases with some settings changed."""
    backend = await build(
        dataclasses.replace(settings, grpc_listen="127.0.0.1:0", **changes), run_projector=False
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{backend.port}") as channel:
            yield channel
    finally:
        await backend.close(grace_s=0.5)


def _raw(data: bytes) -> bytes:
    return data


async def test_a_refused_call_also_echoes_its_request_id(channel: grpc.aio.Channel) -> None:
    # Unary calls carry it in the trailers (no headers frame of its own), refusals too.
    stub = courses_pb2_grpc.CatalogServiceStub(channel)
    call: Any = stub.GetCourse(
        courses_pb2.GetCourseRequest(course_id=str(uuid.uuid4())),
        metadata=(("x-request-id", "refused-1"),),
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    trailers: Any = refused.value.trailing_metadata()
    assert dict(trailers)["x-request-id"] == "refused-1"


@pytest.mark.parametrize(
    "method",
    ["/learnflow.v1.IdentityService/GetSigningKeys", "/learnflow.v1.IdentityService/RegisterUser"],
)
async def test_an_undecodable_request_is_invalid_argument_without_decoder_text(
    channel: grpc.aio.Channel, method: str
) -> None:
    call = channel.unary_unary(method, request_serializer=_raw, response_deserializer=_raw)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call(b"\xff\xff\xff\xff", timeout=5)
    error = refused.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
    assert "cannot be decoded" in (error.details() or "")
    for text in (error.details() or "", str(field_violations(error))):
        assert "Error parsing" not in text and "DecodeError" not in text
    assert "not a valid serialized protobuf message" in field_violations(error)[""]


async def test_an_undecodable_reflection_request_is_invalid_argument(
    channel: grpc.aio.Channel,
) -> None:
    call = channel.stream_stream(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        request_serializer=_raw,
        response_deserializer=_raw,
    )

    async def garbage() -> AsyncIterator[bytes]:
        yield b"\xff\xff\xff\xff"

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        async for _ in call(garbage(), timeout=5):
            pass
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value


def _check(channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...] = ()) -> Any:
    return health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=""), metadata=metadata, timeout=5
    )


async def test_health_and_reflection_are_rate_limited_per_client_address(
    settings: Settings,
) -> None:
    async with server_with(settings, rate_limit_infra="3/minute") as limited:
        first = (("x-forwarded-for", "203.0.113.50"),)
        for _ in range(3):
            await _check(limited, first)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _check(limited, first)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # Reflection counts against the same budget ...
        # The refusal comes before the server reads a request; a request written meanwhile
        # could fail on the client's side first (INTERNAL, "Failed execute_batch"), so none is.
        reflection = reflection_pb2_grpc.ServerReflectionStub(limited)
        listing = reflection.ServerReflectionInfo(metadata=first, timeout=5)
        assert await listing.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # ... and another client has its own.
        await _check(limited, (("x-forwarded-for", "203.0.113.51"),))


async def test_concurrent_health_watch_streams_are_capped(settings: Settings) -> None:
    async with server_with(
        settings, health_watch_max_per_client=2, health_watch_max_total=3
    ) as limited:
        health = health_pb2_grpc.HealthStub(limited)

        def watch(address: str) -> Any:
            return health.Watch(
                health_pb2.HealthCheckRequest(service=""),
                metadata=(("x-forwarded-for", address),),
                timeout=10,
            )

        async def opened(address: str) -> Any:
            stream = watch(address)
            await stream.read()  # the current status: the stream is admitted
            return stream

        streams = [await opened("203.0.113.60"), await opened("203.0.113.60")]
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await watch("203.0.113.60").read()
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        streams.append(await opened("203.0.113.61"))
        with pytest.raises(grpc.aio.AioRpcError) as full:
            await watch("203.0.113.62").read()
        assert full.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # A closed stream frees its slot.
        streams.pop(0).cancel()
        for _ in range(50):
            try:
                streams.append(await opened("203.0.113.60"))
                break
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("the slot of a cancelled stream was never freed")
        for stream in streams:
            stream.cancel()
