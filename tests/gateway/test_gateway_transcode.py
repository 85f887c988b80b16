"""Request and response mapping through the gateway, end to end against the test backend."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from gateway import jsonlimits
from gateway.settings import Settings


async def get_json(client: httpx.AsyncClient, url: str, status: int = 200) -> Any:
    response = await client.get(url)
    assert response.status_code == status, response.text
    return response.json()


async def test_path_variables_and_additional_binding(client: httpx.AsyncClient) -> None:
    primary = await get_json(client, "/v1/shelves/s%201/things/t1")
    assert primary["id"] == "t1"
    assert primary["displayName"] == "shelf=s 1"
    extra = await get_json(client, "/v1/things/t2")
    assert extra["id"] == "t2" and extra["displayName"] == "shelf="


async def test_int64_is_a_string_and_defaults_are_printed(client: httpx.AsyncClient) -> None:
    thing = await get_json(client, "/v1/things/t1")
    assert thing["big"] == "9007199254740993"
    assert thing["ubig"] == "0"
    assert thing["tags"] == [] and thing["labels"] == {} and thing["flag"] is False
    assert thing["color"] == "COLOR_UNSPECIFIED"
    # Fields with presence (messages, wrappers, oneof members) stay absent when unset.
    assert "inner" not in thing and "limit" not in thing and "text" not in thing


async def test_literal_route_beats_variable_route(client: httpx.AsyncClient) -> None:
    assert (await get_json(client, "/v1/things/featured"))["id"] == "featured"


async def test_multi_segment_variable_and_custom_method(client: httpx.AsyncClient) -> None:
    doc = await get_json(client, "/v1/projects/p1/docs/a/b%2Fc")
    assert doc == {"name": "projects/p1/docs/a/b%2Fc"}
    search = await client.request("SEARCH", "/v1/projects/p1/search?view=full")
    assert search.status_code == 200
    assert search.json() == {"name": "projects/p1?view=full"}
    book = await get_json(client, "/v1/shelves/s1/anything/books/b1")
    assert book == {"name": "s1|b1"}


async def test_verb_route(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/things/t7:publish", json={"reason": "ready"})
    assert response.status_code == 200
    assert response.json()["id"] == "t7"
    assert response.json()["displayName"] == "ready"


async def test_body_field_with_query_parameter(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/shelves/s1/things?validate_only=true",
        json={
            "displayName": "x",
            "big": "12",
            "when": "2024-01-02T03:04:05Z",
            "ttl": "1.5s",
            "limit": 3,
            "text": "hello",
            "inner": {"note": "n", "counts": ["1", 2]},
        },
    )
    assert response.status_code == 200, response.text
    thing = response.json()
    assert thing["id"] == "s1/t1"
    assert thing["tags"] == ["validated"]
    assert thing["when"] == "2024-01-02T03:04:05Z"
    assert thing["ttl"] == "1.500s"
    assert thing["limit"] == 3
    assert thing["inner"]["counts"] == ["1", "2"]


async def test_body_star_with_path_variable(client: httpx.AsyncClient) -> None:
    response = await client.put(
        "/v1/things/t3", json={"display_name": "proto name", "inner": {"level": 2}}
    )
    assert response.status_code == 200, response.text
    assert response.json()["id"] == "t3"
    assert response.json()["displayName"] == "proto name"
    assert response.json()["inner"]["level"] == 2


async def test_body_star_accepts_an_empty_body(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/things/t4:publish")
    assert response.status_code == 200
    assert response.json()["id"] == "t4"


async def test_query_parameters_of_every_kind(client: httpx.AsyncClient) -> None:
    query = (
        "color=COLOR_RED&big=-5&ubig=18446744073709551615&tags=a&tags=b"
        "&inner.level=3&inner.shade=2&inner.counts=4&inner.counts=5"
        "&when=2024-01-02T03:04:05Z&ttl=3.5s&limit=7&nickname=nn&flag=true&text=hi"
        "&score=1.5&palette=1&palette=COLOR_BLUE&enabled=false&mask=inner.note,displayName"
        "&displayName=camel&blob=AQI%3D&anything=%7B%22k%22%3A1%7D"
    )
    thing = (await get_json(client, "/v1/echo?" + query))["thing"]
    assert thing["color"] == "COLOR_RED"
    assert thing["big"] == "-5"
    assert thing["ubig"] == "18446744073709551615"
    assert thing["tags"] == ["a", "b"]
    assert thing["inner"] == {"level": 3, "shade": "COLOR_BLUE", "counts": ["4", "5"], "note": ""}
    assert thing["when"] == "2024-01-02T03:04:05Z"
    assert thing["ttl"] == "3.500s"
    assert thing["limit"] == 7 and thing["nickname"] == "nn" and thing["enabled"] is False
    assert thing["flag"] is True and thing["score"] == 1.5 and thing["text"] == "hi"
    assert thing["palette"] == ["COLOR_RED", "COLOR_BLUE"]
    assert thing["mask"] == "inner.note,displayName"
    assert thing["displayName"] == "camel"
    assert thing["blob"] == "AQI="
    assert thing["anything"] == {"k": 1}


async def test_post_binding_of_the_same_method(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/echo", json={"number": 4, "labels": {"a": "b"}})
    assert response.status_code == 200
    assert response.json()["thing"]["number"] == 4
    assert response.json()["thing"]["labels"] == {"a": "b"}


async def test_response_body_field(client: httpx.AsyncClient) -> None:
    inner = await get_json(client, "/v1/things/t5/inner")
    assert inner == {"note": "inner of t5", "level": 3, "shade": "COLOR_UNSPECIFIED", "counts": []}


async def test_field_mask_query_parameter(client: httpx.AsyncClient) -> None:
    thing = await get_json(client, "/v1/things/t1?readMask=displayName,inner.note")
    assert thing["tags"] == ["display_name", "inner.note"]


async def test_patch_infers_update_mask_from_body(client: httpx.AsyncClient) -> None:
    response = await client.patch(
        "/v1/things/t1", json={"displayName": "y", "inner": {"note": "n"}, "labels": {"k": "v"}}
    )
    assert response.status_code == 200, response.text
    thing = response.json()
    assert thing["id"] == "t1"  # from the path, into the body message
    assert thing["mask"] == "displayName,inner.note,labels"


async def test_patch_keeps_an_explicit_update_mask(client: httpx.AsyncClient) -> None:
    response = await client.patch("/v1/things/t1?updateMask=color", json={"displayName": "y"})
    assert response.status_code == 200, response.text
    assert response.json()["mask"] == "color"


async def test_unknown_json_field_is_named(client: httpx.AsyncClient) -> None:
    response = await client.put("/v1/things/t1", json={"displayName": "x", "bogusField": 1})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == 3
    assert "bogusField" in body["message"]


async def test_unknown_nested_json_field_is_named(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/shelves/s/things", json={"inner": {"nope": 1}})
    assert response.status_code == 400
    assert "nope" in response.json()["message"]


async def test_unknown_query_parameter_is_named(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/things/t1?readMask=a&colour=red")
    assert response.status_code == 400
    assert response.json()["message"] == 'unknown query parameter "colour"'
    nested = await client.get("/v1/echo?inner.missing=1")
    assert nested.status_code == 400
    assert "inner.missing" in nested.json()["message"]


async def test_query_parameter_with_body_star_is_rejected(client: httpx.AsyncClient) -> None:
    response = await client.put("/v1/things/t1?displayName=x", json={})
    assert response.status_code == 400
    assert "displayName" in response.json()["message"]


async def test_bad_values_are_400(client: httpx.AsyncClient) -> None:
    for query, needle in [
        ("big=notanumber", "big"),
        ("color=COLOR_GREEN", "COLOR_GREEN"),
        ("flag=maybe", "flag"),
        ("when=yesterday", "when"),
        ("color=COLOR_RED&color=COLOR_BLUE", "color"),
        ("inner=x", "inner"),
        ("labels=x", "labels"),
    ]:
        response = await client.get("/v1/echo?" + query)
        assert response.status_code == 400, query
        assert needle in response.json()["message"], (query, response.json())


async def test_oneof_conflict_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/echo", json={"text": "a", "number": 1})
    assert response.status_code == 400
    assert response.json()["message"] == "number: only one of text, number may be set"


async def test_invalid_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.put(
        "/v1/things/t1", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["message"]
    array = await client.put("/v1/things/t1", json=[1, 2])
    assert array.status_code == 400


async def test_body_too_large_is_413(client: httpx.AsyncClient, settings: Settings) -> None:
    big = {"displayName": "x" * (settings.max_body_bytes + 10)}
    response = await client.put("/v1/things/t1", json=big)
    assert response.status_code == 413
    assert response.json()["code"] == 8

    async def chunks() -> Any:
        # No Content-Length: the limit must hold while streaming too.
        for _ in range(10):
            yield b" " * 1024

    streamed = await client.put(
        "/v1/things/t1", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413


async def test_non_json_body_is_415(client: httpx.AsyncClient) -> None:
    response = await client.put(
        "/v1/things/t1",
        content=b"a=b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415
    assert "application/x-www-form-urlencoded" in response.json()["message"]
    vendor = await client.put(
        "/v1/things/t1", content=b"{}", headers={"Content-Type": "application/merge-patch+json"}
    )
    assert vendor.status_code == 200


async def test_deeply_nested_json_is_400_not_500(client: httpx.AsyncClient) -> None:
    # Python's json recurses per level: 2,000 levels used to escape as RecursionError (500).
    deep = await client.put(
        "/v1/things/t1",
        content=b"[" * 2000 + b"]" * 2000,
        headers={"Content-Type": "application/json"},
    )
    assert deep.status_code == 400, deep.text
    assert deep.json()["code"] == 3
    assert "nested deeper than 64 levels" in deep.json()["message"]
    unclosed = await client.put(
        "/v1/things/t1", content=b"[" * 3000, headers={"Content-Type": "application/json"}
    )
    assert unclosed.status_code == 400 and "nested deeper" in unclosed.json()["message"]
    # Within the bound the body is parsed as usual (and refused for what it is).
    shallow = await client.put(
        "/v1/things/t1",
        json={"extra": {"a": [[[[{"b": "[" * 100}]]]]}},
    )
    assert shallow.status_code == 400
    assert shallow.json()["message"] == 'extra: unknown field "extra"'

    query = await client.get("/v1/echo", params={"anything": "[" * 2000 + "]" * 2000})
    assert query.status_code == 400, query.text
    assert "anything" in query.json()["message"]


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ("[]", 1),
        ('{"a": [1, {"b": "]]]][[[["}], "c": "\\"[["}', 3),
        ("[" * 64 + "]" * 64, 64),
        ("[" * 65 + "]" * 65, 65),
        ("[{" * 40 + "}]" * 40, 80),
    ],
)
def test_nesting_bound(text: str, depth: int) -> None:
    assert jsonlimits.exceeds(text, 64) is (depth > 64)
    assert jsonlimits.exceeds(text, depth) is False
    if depth:
        assert jsonlimits.exceeds(text, depth - 1) is True


def test_nesting_prescan_is_cheap_on_a_megabyte() -> None:
    bodies = [
        "[" * 1_000_000,
        "[" + ",".join(["[1]"] * 200_000) + "]",
        "[" + ",".join(['"x"'] * 200_000) + "]",
    ]
    for body in bodies:
        started = time.perf_counter()
        jsonlimits.exceeds(body, 64)
        assert time.perf_counter() - started < 0.1


MERGE_CASES: list[dict[str, Any]] = [
    {"id": "things/1", "displayName": "ignored: json name"},  # json names go to the parser
    {"id": "a/b", "display_name": "Ünïcode ✓"},
    {"id": "x", "text": "in a oneof"},  # the parser keeps oneof rules
    {"id": "x", "text": "t", "number": 3},  # two members of a oneof: refused
    {"id": "\ud800"},  # a lone surrogate: protobuf refuses it, through the parser
    {"id": "x", "big": "12345678901234567"},
    {"id": "x", "tags": ["a", "b"]},
    {"id": "x", "inner": {"note": "n", "level": 2}},
    {"id": 5},  # not a string: the parser decides
    {"display_name": ""},
]


@pytest.mark.parametrize("params", MERGE_CASES)
def test_params_merge_as_the_json_parser_would(generated: Any, params: dict[str, Any]) -> None:
    """Plain string fields are set directly; the outcome is the parser's, refusals included."""
    from google.protobuf import json_format

    from gateway.transcode import TranscodeError, _merge_params

    thing_type = generated.pb2.Thing
    pool = thing_type.DESCRIPTOR.file.pool
    ours, theirs = (
        thing_type(display_name="from the body"),
        thing_type(display_name="from the body"),
    )
    outcome: list[str] = []
    try:
        _merge_params(dict(params), ours, thing_type.DESCRIPTOR, pool)
        outcome.append("ok")
    except TranscodeError:
        outcome.append("refused")
    try:
        json_format.ParseDict(dict(params), theirs, descriptor_pool=pool)
        outcome.append("ok")
    except (json_format.ParseError, ValueError, TypeError, AttributeError):
        outcome.append("refused")
    assert outcome[0] == outcome[1]
    if outcome[0] == "ok":
        assert ours == theirs


PATH_VALUES = ["t1", "", "s 1", "Ünïcode ✓", "\x00", "x" * 5000, "a/b", "\ud800"]


@pytest.mark.parametrize("value", PATH_VALUES)
def test_path_only_requests_build_as_the_general_path_would(
    generated: Any, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call that sends only path variables takes a shortcut (`_plain_path_request`): for
    every route of the test API, the same message, or the same refusal, as without it."""
    from gateway import transcode
    from gateway.routing import Router

    services = generated.pb2.DESCRIPTOR.services_by_name.values()
    router = Router.for_methods(m for service in services for m in service.methods)
    pool = generated.pb2.DESCRIPTOR.pool

    def build(route: Any, shortcut: bool) -> tuple[str, Any]:
        params = {name: value for name, _ in route.path_fields}
        with monkeypatch.context() as patch:
            if not shortcut:
                patch.setattr(transcode, "_plain_path_request", lambda *args: None)
            try:
                message = transcode.build_request(route, params, [], None, pool)
            except transcode.TranscodeError as exc:
                return "refused", (exc.message, exc.field, exc.description, exc.http_status)
        return "built", message

    shortcut_taken = 0
    for route in router.routes:
        if not route.path_fields or route.body:
            continue
        shortcut_taken += (
            transcode._plain_path_request(route, {n: "t" for n, _ in route.path_fields}) is not None
        )
        assert build(route, True) == build(route, False), route.label
    assert shortcut_taken > 0  # the test API has such routes: the shortcut was compared
