"""Headers <-> metadata in both directions, and request ids."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx
import pytest
from grpc_health.v1 import health_pb2_grpc
from starlette.datastructures import Headers

from gateway.metadata import (
    HeaderError,
    IndexedHeaders,
    client_address,
    forwarded_cookies,
    outgoing_metadata,
    parse_grpc_timeout,
    parse_networks,
    request_id_from,
    response_headers,
)
from gateway.settings import Settings, SettingsError


async def test_forwarded_headers_reach_the_backend(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/v1/echo",
        headers={
            "Authorization": "Bearer abc",
            "X-Request-Id": "req-123",
            "X-Consistency-Token": "ct-9",
            "Grpc-Metadata-Tenant": "acme",
            "Grpc-Metadata-Blob-Bin": base64.b64encode(b"\x00\xff").decode(),
            "X-Forwarded-For": "203.0.113.7",
            "Cookie": "secret=1",
        },
    )
    assert response.status_code == 200
    seen = response.json()["metadata"]
    assert seen["authorization"] == "Bearer abc"
    assert seen["x-request-id"] == "req-123"
    assert seen["x-consistency-token"] == "ct-9"
    assert seen["tenant"] == "acme"
    assert seen["blob-bin"] == "00ff"
    # The gateway trusts no proxy by default: the client's own X-Forwarded-For is ignored.
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert "cookie" not in seen


async def test_gateway_managed_metadata_cannot_be_spoofed(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/v1/echo",
        headers={
            "X-Request-Id": "real",
            "Grpc-Metadata-X-Request-Id": "fake",
            "Grpc-Metadata-X-Forwarded-For": "10.9.9.9",
        },
    )
    seen = response.json()["metadata"]
    assert seen["x-request-id"] == "real"
    assert seen["x-forwarded-for"] == "127.0.0.1"


async def test_response_metadata_becomes_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/echo")
    assert response.headers["grpc-metadata-x-echo-initial"] == "yes"
    assert response.headers["grpc-metadata-x-echo-trailer"] == "done"
    assert response.headers["x-consistency-token"] == "tok-42"
    # Binary metadata has no header form.
    assert "grpc-metadata-x-secret-bin" not in response.headers
    assert not any(k.startswith("grpc-metadata-grpc-") for k in response.headers)


def test_only_allow_listed_cookies_are_forwarded_as_one_cookie_metadata() -> None:
    headers = Headers(
        raw=[
            (b"cookie", b"theme=dark; lf_refresh=rt_1; tracking=x"),
            (b"cookie", b"lf_other=2; bad name=3; lf_refresh2=no"),
        ]
    )
    names = frozenset({"lf_refresh", "lf_other", "bad name"})
    assert forwarded_cookies(headers, names) == "lf_refresh=rt_1; lf_other=2"
    assert forwarded_cookies(headers, frozenset()) is None
    assert forwarded_cookies(Headers(raw=[(b"cookie", b"a=\x01")]), frozenset({"a"})) is None
    md = outgoing_metadata(headers, "127.0.0.1", "rid", (), names)
    assert ("cookie", "lf_refresh=rt_1; lf_other=2") in md
    # A client cannot send its own `cookie` metadata past the allow-list.
    spoofed = Headers(raw=[(b"grpc-metadata-cookie", b"lf_refresh=rt_forged")])
    assert all(key != "cookie" for key, _ in outgoing_metadata(spoofed, None, "rid"))


def test_promoted_metadata_is_a_header_of_its_own_and_never_echoed() -> None:
    trailing = [
        ("set-cookie", "a=1; HttpOnly"),
        ("set-cookie", "a=1; Path=/x; HttpOnly"),
        ("x-other", "v"),
    ]
    out = response_headers(trailing, as_headers=frozenset({"set-cookie"}))
    assert out == [
        ("set-cookie", "a=1; HttpOnly"),
        ("set-cookie", "a=1; Path=/x; HttpOnly"),
        ("Grpc-Metadata-x-other", "v"),
    ]
    # Not promoted: the usual echo; never a Set-Cookie header.
    assert response_headers(trailing)[0] == ("Grpc-Metadata-set-cookie", "a=1; HttpOnly")


async def test_request_id_is_generated_and_echoed(client: httpx.AsyncClient) -> None:
    generated = await client.get("/v1/echo")
    rid = generated.headers["x-request-id"]
    assert uuid.UUID(rid).version == 4
    assert generated.json()["metadata"]["x-request-id"] == rid
    echoed = await client.get("/v1/echo", headers={"X-Request-Id": "mine-1"})
    assert echoed.headers["x-request-id"] == "mine-1"
    # Errors and non-API endpoints carry it too.
    missing = await client.get("/nowhere", headers={"X-Request-Id": "mine-2"})
    assert missing.headers["x-request-id"] == "mine-2"
    health = await client.get("/healthz")
    assert uuid.UUID(health.headers["x-request-id"])


async def test_unusable_request_id_is_replaced(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/echo", headers={"X-Request-Id": "x" * 300})
    assert uuid.UUID(response.headers["x-request-id"])
    markup = await client.get("/v1/echo", headers={"X-Request-Id": "<img src=x>"})
    rid = markup.headers["x-request-id"]
    assert uuid.UUID(rid) and markup.json()["metadata"]["x-request-id"] == rid


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("abc-123_X.y", True),
        ("x" * 64, True),
        ("x" * 65, False),
        ("", False),
        ("a b", False),
        ("<script>", False),
        ("id;drop", False),
        ("caf\u00e9", False),
    ],
)
def test_request_ids_are_taken_only_when_they_match_the_strict_pattern(
    given: str, kept: bool
) -> None:
    rid = request_id_from(Headers({"x-request-id": given}))
    assert (rid == given) is kept
    if not kept:
        assert uuid.UUID(rid).version == 4


LOOPBACK = parse_networks(["127.0.0.0/8", "::1"])
PROXIES = parse_networks(["10.0.0.0/8"])


@pytest.mark.parametrize(
    ("forwarded", "peer", "trusted", "expected"),
    [
        # Trusting no one: the peer, whatever the header says.
        (["198.51.100.9"], "203.0.113.7", (), "203.0.113.7"),
        (["198.51.100.9"], "127.0.0.1", (), "127.0.0.1"),
        # A trusted proxy's hop is believed; the client's own prefix is not.
        (["198.51.100.9, 203.0.113.7"], "10.0.0.2", PROXIES, "203.0.113.7"),
        (["198.51.100.9, 203.0.113.7, 10.1.1.1"], "10.0.0.2", PROXIES, "203.0.113.7"),
        # Several headers read as one list, in order.
        (["198.51.100.9", "203.0.113.8"], "10.0.0.2", PROXIES, "203.0.113.8"),
        # An untrusted peer's header is ignored.
        (["198.51.100.9"], "203.0.113.7", PROXIES, "203.0.113.7"),
        # Only proxies all the way: the leftmost hop.
        (["10.2.2.2"], "10.0.0.2", PROXIES, "10.2.2.2"),
        # No header at all.
        ([], "10.0.0.2", PROXIES, "10.0.0.2"),
        # Not an IP where the client should be: the peer instead, never the junk.
        (["<img src=x onerror=alert(1)>"], "10.0.0.2", PROXIES, "10.0.0.2"),
        (["1.2.3.4:80"], "10.0.0.2", PROXIES, "10.0.0.2"),
        # IPv6, normalised.
        (["2001:DB8::1"], "::1", LOOPBACK, "2001:db8::1"),
        # A peer that is not an IP: no address at all.
        (["203.0.113.7"], "testclient", LOOPBACK, None),
    ],
)
def test_client_address_is_the_rightmost_untrusted_hop(
    forwarded: list[str], peer: str, trusted: tuple[Any, ...], expected: str | None
) -> None:
    assert client_address(forwarded, peer, trusted) == expected


def test_resolved_addresses_are_remembered_only_for_short_chains() -> None:
    from gateway.metadata import _remembered_client_address

    _remembered_client_address.cache_clear()
    assert client_address(["203.0.113.7"], "10.0.0.2", PROXIES) == "203.0.113.7"
    assert client_address(["203.0.113.7"], "10.0.0.2", PROXIES) == "203.0.113.7"
    assert _remembered_client_address.cache_info().hits == 1
    # A chain a client padded to kilobytes is resolved all the same, and not kept.
    padded = ", ".join(["198.51.100.9"] * 400 + ["203.0.113.8"])
    for _ in range(2):
        assert client_address([padded], "10.0.0.2", PROXIES) == "203.0.113.8"
    assert _remembered_client_address.cache_info().currsize == 1


def test_outgoing_metadata_sends_one_resolved_address() -> None:
    headers = Headers(raw=[(b"x-forwarded-for", b"198.51.100.9, 203.0.113.7")])
    untrusted = dict(outgoing_metadata(headers, "10.0.0.2", "rid"))
    assert untrusted["x-forwarded-for"] == "10.0.0.2"
    trusted = dict(outgoing_metadata(headers, "10.0.0.2", "rid", PROXIES))
    assert trusted["x-forwarded-for"] == "203.0.113.7"


def test_trusted_proxies_setting() -> None:
    assert Settings.from_env({}).trusted_proxies == ()
    env = {"LEARNFLOW_GATEWAY_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.1,::1"}
    assert [str(n) for n in Settings.from_env(env).trusted_proxies] == [
        "10.0.0.0/8",
        "192.168.1.1/32",
        "::1/128",
    ]
    with pytest.raises(SettingsError, match="TRUSTED_PROXIES"):
        Settings.from_env({"LEARNFLOW_GATEWAY_TRUSTED_PROXIES": "10.0.0.0/33"})


def test_hardening_settings_from_env() -> None:
    defaults = Settings.from_env({})
    assert defaults.reload_token == ""
    assert (defaults.max_header_bytes, defaults.max_headers_total_bytes) == (8192, 32768)
    assert defaults.max_json_depth == 64
    custom = Settings.from_env(
        {
            "LEARNFLOW_GATEWAY_RELOAD_TOKEN": "s3cret",
            "LEARNFLOW_GATEWAY_MAX_HEADER_BYTES": "4096",
            "LEARNFLOW_GATEWAY_MAX_HEADERS_TOTAL_BYTES": "16384",
            "LEARNFLOW_GATEWAY_MAX_JSON_DEPTH": "32",
        }
    )
    assert custom.reload_token == "s3cret"
    assert (custom.max_header_bytes, custom.max_headers_total_bytes) == (4096, 16384)
    assert custom.max_json_depth == 32


async def test_readiness_checks_count_against_the_callers_address(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backend rate-limits health checks per client address: /readyz must not spend the
    gateway's own budget on behalf of anyone who calls it."""
    seen: list[dict[str, str]] = []
    real = health_pb2_grpc.HealthStub

    class Stub:
        def __init__(self, channel: Any) -> None:
            self.stub = real(channel)

        async def Check(self, request: Any, **kwargs: Any) -> Any:
            seen.append(dict(kwargs["metadata"]))
            return await self.stub.Check(request, **kwargs)

    monkeypatch.setattr(health_pb2_grpc, "HealthStub", Stub)
    response = await client.get("/readyz", headers={"X-Forwarded-For": "198.51.100.9"})
    assert response.status_code == 200
    # The gateway trusts no proxy by default: its peer, not the claimed address.
    assert seen == [
        {"x-forwarded-for": "127.0.0.1", "x-request-id": response.headers["x-request-id"]}
    ]


async def test_bad_metadata_headers_are_400(client: httpx.AsyncClient) -> None:
    reserved = await client.get("/v1/echo", headers={"Grpc-Metadata-Grpc-Foo": "x"})
    assert reserved.status_code == 400
    assert "grpc-foo" in reserved.json()["message"]
    not_base64 = await client.get("/v1/echo", headers={"Grpc-Metadata-Data-Bin": "@@@"})
    assert not_base64.status_code == 400


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("5S", 5.0), ("100m", 0.1), ("2M", 120.0), ("1H", 3600.0), ("250u", 0.00025), ("7n", 7e-9)],
)
def test_grpc_timeout_units(header: str, seconds: float) -> None:
    assert parse_grpc_timeout(header) == pytest.approx(seconds)


@pytest.mark.parametrize("header", ["", "5", "S", "123456789S", "1.5S", "5s"])
def test_grpc_timeout_rejects_malformed(header: str) -> None:
    with pytest.raises(HeaderError):
        parse_grpc_timeout(header)


async def test_oversized_headers_are_431_before_any_grpc_call(client: httpx.AsyncClient) -> None:
    # A 20 KB Authorization header used to come back as 429 from gRPC's metadata limit.
    huge = await client.get("/v1/echo", headers={"Authorization": "Bearer " + "a" * 20_000})
    assert huge.status_code == 431, huge.text
    assert huge.json()["code"] == 3 and "authorization" in huge.json()["message"]
    assert uuid.UUID(huge.headers["x-request-id"])
    # Many headers, each fine, together too large.
    many = {f"X-Filler-{i}": "f" * 4000 for i in range(10)}
    assert (await client.get("/v1/echo", headers=many)).status_code == 431
    # Under the per-header limit but more than gRPC's metadata limit leaves room for.
    near = await client.get("/v1/echo", headers={"Authorization": "Bearer " + "a" * 7800})
    assert near.status_code == 431 and "forwarded" in near.json()["message"]
    # Also on the fixed endpoints.
    assert (await client.get("/healthz", headers={"X-Big": "b" * 9000})).status_code == 431
    fine = await client.get("/v1/echo", headers={"Authorization": "Bearer " + "a" * 6000})
    assert fine.status_code == 200


def test_fresh_request_ids_are_version_4_uuids_in_their_usual_form() -> None:
    from gateway.metadata import fresh_request_id

    ids = {fresh_request_id() for _ in range(2000)}
    assert len(ids) == 2000
    for value in ids:
        parsed = uuid.UUID(value)
        assert str(parsed) == value
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


RAW_HEADER_SETS: list[list[tuple[bytes, bytes]]] = [
    [],
    [(b"authorization", b"Bearer a"), (b"authorization", b"Bearer b")],
    [(b"x-forwarded-for", b"1.2.3.4"), (b"x-forwarded-for", b"5.6.7.8, 9.9.9.9")],
    [(b"grpc-metadata-trace", b"t"), (b"Grpc-Metadata-Mixed", b"m"), (b"accept", b"*/*")],
    [(b"grpc-metadata-blob-bin", b"aGk"), (b"x-consistency-token", b"c1")],
    [(b"grpc-metadata-\xc0x", b"v")],  # a latin-1 name: refused alike
    [(b"grpc-metadata-x-request-id", b"spoof"), (b"grpc-metadata-ok", b"\x01")],
    [(b"cookie", b"a=1; keep=2"), (b"if-none-match", b'"e"'), (b"accept-encoding", b"gzip")],
]
LOOKUPS = ["authorization", "Authorization", "X-FORWARDED-FOR", "cookie", "missing", "accept"]


@pytest.mark.parametrize("raw", RAW_HEADER_SETS)
def test_indexed_headers_read_as_starlettes_headers(raw: list[tuple[bytes, bytes]]) -> None:
    scope = {"type": "http", "headers": list(raw)}
    ours, theirs = IndexedHeaders(scope=scope), Headers(scope=scope)
    for name in LOOKUPS:
        assert ours.get(name) == theirs.get(name)
        assert ours.get(name, "fallback") == theirs.get(name, "fallback")
        assert (name in ours) == (name in theirs)
        assert ours.getlist(name) == theirs.getlist(name)
        if name in theirs:
            assert ours[name] == theirs[name]
        else:
            with pytest.raises(KeyError):
                ours[name]
    assert not ours.__contains__(42)  # a non-string name is in no headers
    assert ours.items() == theirs.items()

    def outcome(headers: Headers) -> Any:
        try:
            return outgoing_metadata(headers, "10.0.0.1", "rid", (), frozenset({"keep"}))
        except HeaderError as exc:
            return str(exc)

    assert outcome(ours) == outcome(theirs)


def test_metadata_headers_are_found_in_any_case_and_refused_alike() -> None:
    def sent(raw: list[tuple[bytes, bytes]]) -> Any:
        try:
            headers = IndexedHeaders(scope={"type": "http", "headers": raw})
            return outgoing_metadata(headers, None, "rid")
        except HeaderError as exc:
            return str(exc)

    assert sent(RAW_HEADER_SETS[3]) == [("x-request-id", "rid"), ("trace", "t"), ("mixed", "m")]
    assert sent(RAW_HEADER_SETS[4])[1:] == [("x-consistency-token", "c1"), ("blob-bin", b"hi")]
    assert sent(RAW_HEADER_SETS[5]) == 'invalid metadata key "àx"'
    assert sent(RAW_HEADER_SETS[6]) == 'header for metadata "ok" must be printable ASCII'
