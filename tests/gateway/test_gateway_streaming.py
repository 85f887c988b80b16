"""Server-streaming RPCs as NDJSON and Server-Sent Events."""

from __future__ import annotations

import json

import httpx


async def test_ndjson_stream(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/things:stream?count=3")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert response.headers["grpc-metadata-x-stream"] == "on"
    lines = response.text.splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["0", "1", "2"]
    assert json.loads(lines[2])["big"] == "2"


async def test_ndjson_mid_stream_error_is_the_last_line(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/things:stream?count=2&failCode=10")
    assert response.status_code == 200
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line.get("id") for line in lines[:2]] == ["0", "1"]
    assert lines[2] == {"error": {"code": 10, "message": "stream broke", "details": []}}


async def test_sse_stream(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/v1/things:stream?count=2", headers={"Accept": "text/event-stream"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = response.text.split("\n\n")
    assert events[-1] == ""
    # Each event: its id (numbered from 1), then its data.
    parsed = [event.split("\n") for event in events[:-1]]
    assert [lines[0] for lines in parsed] == ["id: 1", "id: 2"]
    assert [json.loads(lines[1].removeprefix("data: "))["id"] for lines in parsed] == ["0", "1"]


async def test_sse_mid_stream_error_event(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/v1/things:stream?count=1&failCode=13", headers={"Accept": "text/event-stream"}
    )
    events = [e for e in response.text.split("\n\n") if e]
    assert events[0].startswith("id: 1\ndata: ")
    kind, data = events[1].split("\n")
    assert kind == "event: error"
    assert json.loads(data.removeprefix("data: ")) == {
        "code": 13,
        "message": "stream broke",
        "details": [],
    }


async def test_error_before_first_message_is_a_plain_http_error(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/v1/things:stream?count=0&failCode=7")
    assert response.status_code == 403
    assert response.json()["code"] == 7


async def test_empty_stream(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/things:stream?count=0")
    assert response.status_code == 200
    assert response.text == ""


async def test_streams_have_no_default_deadline(client: httpx.AsyncClient) -> None:
    # Watch feeds are long-lived: only an explicit Grpc-Timeout bounds them.
    unbounded = await client.get("/v1/things:stream?count=1")
    assert json.loads(unbounded.text)["score"] == -1
    bounded = await client.get("/v1/things:stream?count=1", headers={"Grpc-Timeout": "5S"})
    assert 0 < json.loads(bounded.text)["score"] <= 5.5
