"""The gateway's HTTP caching of a GET answers exactly as Starlette's `Response` and
`MutableHeaders` did before it built header lists itself."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from starlette.responses import Response

from gateway.proxy import conditional, encoded_headers

ETAG, SAME = '"a1"', '"b2"'
BODY = b'{"id":"x"}'

ANSWER_HEADERS: list[list[tuple[str, str]]] = [
    [],
    [("Grpc-Metadata-x-request-id", "r1")],
    [("X-Consistency-Token", "t1"), ("Grpc-Metadata-x-consistency-token", "t1")],
    [("x-request-id", "r1"), ("ETag", '"server"'), ("x-request-id", "r2")],
    [("Cache-Control", "no-store"), ("vary", "Cookie"), ("Content-Encoding", "gzip")],
]
METADATA: list[list[tuple[str, str | bytes]]] = [
    [],
    [("cache-control", "public, max-age=5")],
    [("vary", "authorization, x-consistency-token"), ("vary", " ,Accept-Encoding")],
    [("cache-control", b"binary"), ("x-request-id", "r9")],
]
IF_NONE_MATCH = [None, "", ETAG, SAME, f'"zz", {ETAG}', "*", '"other"']
VARY = [None, [], ["Accept-Encoding"]]


def reference(
    if_none_match: str | None,
    headers: list[tuple[str, str]],
    metadata: list[tuple[str, str | bytes]],
    vary: list[str] | None,
) -> Response:
    """The implementation before header lists: a Response, its headers appended, then
    updated (or a fresh 304 taking two of them over)."""
    response = Response(BODY, media_type="application/json")
    for key, value in headers:
        response.headers.append(key, value)
    chosen = "private, no-cache"
    varies = list(vary or ())
    for name, given in metadata:
        if not isinstance(given, str):
            continue
        if name == "cache-control":
            chosen = given
        elif name == "vary":
            varies.extend(v.strip() for v in given.split(",") if v.strip())
    caching = {"ETag": ETAG, "Cache-Control": chosen}
    if varies:
        caching["Vary"] = ", ".join(dict.fromkeys(varies))
    wanted = {tag.strip() for tag in (if_none_match or "").split(",")}
    if ETAG in wanted or SAME in wanted or "*" in wanted:
        not_modified = Response(status_code=304, headers=caching)
        for key in ("x-request-id", "x-consistency-token"):
            if key in response.headers:
                not_modified.headers[key] = response.headers[key]
        return not_modified
    response.headers.update(caching)
    return response


def seen(response: Response) -> tuple[Any, ...]:
    return response.status_code, bytes(response.body), response.raw_headers


@pytest.mark.parametrize(("headers", "metadata"), list(itertools.product(ANSWER_HEADERS, METADATA)))
@pytest.mark.parametrize("if_none_match", IF_NONE_MATCH)
@pytest.mark.parametrize("vary", VARY)
def test_conditional_answers_as_response_and_mutable_headers(
    headers: list[tuple[str, str]],
    metadata: list[tuple[str, str | bytes]],
    if_none_match: str | None,
    vary: list[str] | None,
) -> None:
    ours = conditional(
        if_none_match, BODY, encoded_headers(headers), ETAG, metadata, vary=vary, same=SAME
    )
    assert seen(ours) == seen(reference(if_none_match, headers, metadata, vary))
