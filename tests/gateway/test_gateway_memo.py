"""Remembered transcodings (gateway/memo.py): same bytes, same JSON; bounded by bytes."""

from __future__ import annotations

import dataclasses
import json

import httpx
from starlette.applications import Starlette

from gateway.memo import JsonMemo, Printed
from gateway.proxy import GZIP_MIN_BYTES, Gateway, accepts_gzip


def _printed(size: int) -> Printed:
    return Printed(b"x" * size, '"tag"')


def test_the_memo_keeps_the_most_recently_used_within_its_byte_budget() -> None:
    memo = JsonMemo(max_bytes=16_000)
    for i in range(40):
        memo.put(("/s/M ", bytes([i]) * 100), _printed(200))
        memo.get(("/s/M ", bytes([0]) * 100))  # the first stays in use
    assert memo.size <= 16_000
    assert 0 < len(memo) < 40
    assert memo.get(("/s/M ", bytes([0]) * 100)) is not None
    assert memo.get(("/s/M ", bytes([1]) * 100)) is None  # the oldest unused went first
    assert memo.get(("/s/M ", bytes([39]) * 100)) is not None


def test_a_reply_larger_than_a_sixteenth_of_the_budget_is_never_kept() -> None:
    memo = JsonMemo(max_bytes=16_000)
    memo.put(("/s/M ", b"big"), _printed(2_000))
    assert len(memo) == 0 and memo.size == 0
    assert memo.get(("/s/M ", b"big")) is None


def test_the_key_names_the_method_and_the_printed_part(app: Starlette) -> None:
    gateway: Gateway = app.state.gateway
    assert gateway.registry is not None
    route = next(r for r in gateway.registry.router.routes if r.method.name == "GetThing")
    inner = dataclasses.replace(route, response_body="inner")
    assert route.memo_key != inner.memo_key
    assert route.grpc_path in route.memo_key


async def test_a_repeated_reply_is_answered_from_the_memo_and_a_new_one_is_not(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    gateway: Gateway = app.state.gateway
    assert gateway.registry is not None and gateway.registry.memo is not None
    memo = gateway.registry.memo
    first = await client.get("/v1/things/memo-a")
    hits = memo.hits
    again = await client.get("/v1/things/memo-a")
    assert memo.hits == hits + 1
    assert again.content == first.content and again.headers["etag"] == first.headers["etag"]
    assert again.headers["content-type"] == "application/json"
    other = await client.get("/v1/things/memo-b")
    assert memo.hits == hits + 1  # different bytes: printed afresh
    assert json.loads(other.content)["id"] == "memo-b"
    assert other.headers["etag"] != first.headers["etag"]
    # The same bytes through a binding that prints only a part: its own entry.
    inner = await client.get("/v1/things/memo-a/inner")
    assert json.loads(inner.content)["note"] == "inner of memo-a"
    assert "id" not in json.loads(inner.content)


def test_accept_encoding_admits_gzip_by_name_or_star_with_a_positive_q() -> None:
    assert accepts_gzip("gzip") and accepts_gzip("br, GZIP;q=0.5") and accepts_gzip("*")
    assert accepts_gzip("deflate, x-gzip")
    for refused in (None, "", "identity", "br", "gzip;q=0", "gzip;q=0.0", "gzip;q=x", "gzipx"):
        assert not accepts_gzip(refused), refused
    assert not accepts_gzip("gzip" + ", br" * 200)  # an absurd header is not parsed


async def test_a_large_reply_is_gzip_coded_once_for_clients_that_accept_it(
    client: httpx.AsyncClient,
) -> None:
    path = "/v1/things/big?readMask=" + ",".join(f"fieldNumber{i:03d}" for i in range(90))
    plain = await client.get(path, headers={"Accept-Encoding": "identity"})
    coded = await client.get(path, headers={"Accept-Encoding": "gzip"})
    assert plain.status_code == coded.status_code == 200
    assert len(plain.content) >= GZIP_MIN_BYTES
    assert "content-encoding" not in plain.headers
    assert coded.headers["content-encoding"] == "gzip"
    assert int(coded.headers["content-length"]) < len(plain.content) / 2
    assert coded.content == plain.content  # httpx decoded it: the same JSON
    assert plain.headers["vary"] == coded.headers["vary"]
    assert "Accept-Encoding" in coded.headers["vary"]
    assert coded.headers["etag"] != plain.headers["etag"]  # a validator per representation
    assert coded.headers["etag"].endswith('-gzip"')
    # Either validator of the same content answers 304, in either coding.
    for tag in (plain.headers["etag"], coded.headers["etag"]):
        again = await client.get(path, headers={"Accept-Encoding": "gzip", "If-None-Match": tag})
        assert again.status_code == 304 and again.content == b""
    # A small reply is left as it is.
    small = await client.get("/v1/things/t1", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers
    assert "Accept-Encoding" not in small.headers.get("vary", "")
