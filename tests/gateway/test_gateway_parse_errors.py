"""Every parse-layer refusal explains itself: INVALID_ARGUMENT, one BadRequest field violation
whose path is the lowerCamel JSON path from the request's root, and the API's words, never
Python's or protobuf's."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
# Text that would betray the implementation rather than describe the API.
INTERNAL = re.compile(
    r"invalid literal|Message type|has no field named|Couldn't parse|does not match format"
    r"|Traceback|ParseError|ValueError|TypeError|base 10|_pb2|gwtest\.v1\.|Expecting value"
    r"|char \d|Failed to parse|must not contain"
)


def violation(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == 3, body
    assert not INTERNAL.search(response.text), body
    [detail] = body["details"]
    assert detail["@type"] == BAD_REQUEST, body
    [found] = detail["fieldViolations"]
    assert found["description"], body
    # The field's path leads the message, so a log line alone says what was wrong.
    if found["field"]:
        assert body["message"].startswith(found["field"] + ": ") or (
            f'"{found["field"]}"' in body["message"]
        ), body
    result: dict[str, Any] = found
    return result


QUERY_CASES = [
    # (query, field path, words the description must contain)
    ("big=abc", "big", "must be an integer"),
    ("big=1.5", "big", "must be an integer"),
    ("limit=99999999999", "limit", "between"),
    ("ubig=-1", "ubig", "between 0 and"),
    ("color=COLOR_GREEN", "color", "must be one of COLOR_UNSPECIFIED, COLOR_RED, COLOR_BLUE"),
    ("flag=maybe", "flag", "true or false"),
    ("when=2027-01", "when", "RFC 3339"),
    ("when=yesterday", "when", "e.g. 2024-05-01T12:00:00Z"),
    ("ttl=5minutes", "ttl", 'suffix, e.g. "1.5s"'),
    ("score=high", "score", "must be a number"),
    ("color=COLOR_RED&color=COLOR_BLUE", "color", "more than once"),
    ("inner=x", "inner", "is a message"),
    ("inner.level=x", "inner.level", "must be an integer"),
    ("inner.shade=PINK", "inner.shade", "must be one of"),
    ("inner.counts=1&inner.counts=x", "inner.counts[1]", "must be an integer"),
    ("palette=COLOR_RED&palette=GREEN", "palette[1]", "must be one of"),
    ("labels=x", "labels", "is a map"),
    ("mask=display_name", "mask", 'send "displayName", not "display_name"'),
    ("blob=a", "blob", "base64"),
    ("extra=notjson", "extra", "must be JSON"),
    ("display_name=a&displayName=b", "displayName", "more than once"),
    ("colour=red", "colour", 'unknown field "colour"; did you mean "color"?'),
    ("inner.missing=1", "inner.missing", 'unknown field "missing"'),
]


@pytest.mark.parametrize(("query", "field", "words"), QUERY_CASES)
async def test_query_parameter_errors(
    client: httpx.AsyncClient, query: str, field: str, words: str
) -> None:
    found = violation(await client.get("/v1/echo?" + query))
    assert found["field"] == field
    assert words in found["description"], found


BODY_CASES: list[tuple[Any, str, str]] = [
    ({"big": "abc"}, "big", "must be an integer"),
    ({"big": True}, "big", "must be an integer"),
    ({"displayName": 5}, "displayName", "must be a string"),
    ({"display_name": 5}, "displayName", "must be a string"),
    ({"bogusField": 1}, "bogusField", 'unknown field "bogusField"'),
    ({"displayNme": "x"}, "displayNme", 'did you mean "displayName"?'),
    ({"inner": {"nope": 1}}, "inner.nope", 'unknown field "nope"'),
    ({"inner": []}, "inner", "must be a JSON object"),
    ({"inner": {"counts": ["1", "x"]}}, "inner.counts[1]", "must be an integer"),
    ({"tags": "solo"}, "tags", "must be a JSON array"),
    ({"tags": ["a", None]}, "tags[1]", "must not be null"),
    ({"labels": {"k": 1}}, "labels.k", "must be a string"),
    ({"labels": []}, "labels", "map"),
    ({"when": "2027-01"}, "when", "RFC 3339"),
    ({"when": 1700000000}, "when", "RFC 3339"),
    ({"ttl": 5}, "ttl", "duration"),
    ({"color": "GREEN"}, "color", 'got "GREEN"'),
    ({"flag": "yes"}, "flag", "true or false"),
    ({"score": "high"}, "score", "must be a number"),
    ({"limit": "ten"}, "limit", "must be an integer"),
    ({"enabled": 1}, "enabled", "true or false"),
    ({"blob": "a"}, "blob", "base64"),
    ({"mask": "inner.shade,display_name"}, "mask", 'send "displayName"'),
    ({"mask": ["a"]}, "mask", "comma-separated"),
    ({"text": "a", "number": 1}, "number", "only one of text, number may be set"),
    ({"displayName": "a", "display_name": "b"}, "displayName", "given twice"),
    ({"extra": "x"}, "extra", "must be a JSON object"),
]


@pytest.mark.parametrize(("body", "field", "words"), BODY_CASES)
async def test_body_errors(client: httpx.AsyncClient, body: Any, field: str, words: str) -> None:
    found = violation(await client.post("/v1/echo", json=body))
    assert found["field"] == field
    assert words in found["description"], found


async def test_body_field_paths_start_at_the_request_message(client: httpx.AsyncClient) -> None:
    # body: "thing": the client sends a Thing; the path names it as the request field does,
    # like the backend's own field violations.
    found = violation(await client.post("/v1/shelves/s/things", json={"big": "x"}))
    assert found["field"] == "thing.big"
    found = violation(await client.patch("/v1/things/t1", json={"inner": {"level": "high"}}))
    assert found["field"] == "thing.inner.level"


async def test_path_variable_errors_name_the_field(client: httpx.AsyncClient) -> None:
    found = violation(await client.get("/v1/things/t1?readMask=read_mask"))
    assert found["field"] == "readMask"
    found = violation(await client.get("/v1/things/t1?thingId=x"))
    assert found["field"] == "thingId"
    assert "URL path" in found["description"]


async def test_query_parameters_on_a_body_star_method(client: httpx.AsyncClient) -> None:
    found = violation(await client.put("/v1/things/t1?displayName=x", json={}))
    assert found["field"] == "displayName"
    assert "JSON body" in found["description"]


async def test_query_parameter_bound_by_the_body(client: httpx.AsyncClient) -> None:
    found = violation(await client.post("/v1/shelves/s/things?thing.big=1", json={}))
    assert found["field"] == "thing.big"
    assert "request body" in found["description"]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"{not json", "not valid JSON (line 1, column 2)"),
        (b'{"a": 1', "not valid JSON (line 1, column 8)"),
        (b"\xff\xfe{", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"text"', "must be a JSON object"),
    ],
)
async def test_whole_body_errors_have_an_empty_field(
    client: httpx.AsyncClient, content: bytes, words: str
) -> None:
    response = await client.put(
        "/v1/things/t1", content=content, headers={"Content-Type": "application/json"}
    )
    found = violation(response)
    assert found["field"] == ""
    assert words in found["description"], found


async def test_valid_values_in_every_accepted_form_still_pass(client: httpx.AsyncClient) -> None:
    # The checks accept what the proto3 JSON mapping accepts.
    body = {
        "big": 5,
        "ubig": "18446744073709551615",
        "limit": 3.0,
        "score": "NaN",
        "color": 2,
        "palette": ["COLOR_RED", "1"],
        "display_name": "proto names are accepted",
        "when": "2024-05-01T12:00:00.5+02:00",
        "ttl": "-1.5s",
        "mask": "displayName,inner.shade",
        "blob": "aGk",
        "labels": {"k": "v"},
        "extra": {"any": [1, None]},
        "anything": None,
        "nickname": None,
        "inner": {"counts": ["1", 2], "shade": None},
        "text": "a",
        "number": None,
    }
    response = await client.post("/v1/echo", json=body)
    assert response.status_code == 200, response.text
    query = await client.get("/v1/echo?big=-3&flag=1&palette=1&when=2024-05-01T00:00:00Z&limit=4")
    assert query.status_code == 200, query.text
