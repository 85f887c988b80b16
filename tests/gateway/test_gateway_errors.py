"""gRPC status -> HTTP, rich error details and the fixed 404/405 answers."""

from __future__ import annotations

import grpc
import httpx
import pytest
from google.protobuf.descriptor_pool import DescriptorPool

from gateway.errors import HTTP_STATUS, from_status


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (grpc.StatusCode.OK, 200),
        (grpc.StatusCode.CANCELLED, 499),
        (grpc.StatusCode.UNKNOWN, 500),
        (grpc.StatusCode.INVALID_ARGUMENT, 400),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504),
        (grpc.StatusCode.NOT_FOUND, 404),
        (grpc.StatusCode.ALREADY_EXISTS, 409),
        (grpc.StatusCode.PERMISSION_DENIED, 403),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
        (grpc.StatusCode.FAILED_PRECONDITION, 400),
        (grpc.StatusCode.ABORTED, 409),
        (grpc.StatusCode.OUT_OF_RANGE, 400),
        (grpc.StatusCode.UNIMPLEMENTED, 501),
        (grpc.StatusCode.INTERNAL, 500),
        (grpc.StatusCode.UNAVAILABLE, 503),
        (grpc.StatusCode.DATA_LOSS, 500),
        (grpc.StatusCode.UNAUTHENTICATED, 401),
    ],
)
def test_status_table(code: grpc.StatusCode, status: int) -> None:
    assert HTTP_STATUS[code] == status


@pytest.mark.parametrize(
    ("code", "status"),
    [(3, 400), (5, 404), (6, 409), (7, 403), (9, 400), (10, 409), (13, 500), (14, 503)],
)
async def test_backend_status_becomes_http_status(
    client: httpx.AsyncClient, code: int, status: int
) -> None:
    response = await client.post("/v1/fail", json={"code": code, "message": f"failed {code}"})
    assert response.status_code == status
    assert response.json() == {"code": code, "message": f"failed {code}", "details": []}
    assert "retry-after" not in response.headers


async def test_rich_details_and_retry_after(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/fail",
        json={"code": 8, "message": "slow down", "badField": "email", "retryDelay": "1.2s"},
    )
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"  # rounded up
    assert response.json() == {
        "code": 8,
        "message": "slow down",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": "email", "description": "is wrong"}],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.200s"},
        ],
    }


async def test_unauthenticated_asks_for_a_bearer_token(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/fail", json={"code": 16, "message": "who are you"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["code"] == 16


async def test_not_found_from_backend(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/things/missing")
    assert response.status_code == 404
    assert response.json()["message"] == "thing missing not found"


async def test_unmatched_route_is_404_status_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/v2/nothing/here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "code": 5,
        "message": "no route for GET /v2/nothing/here",
        "details": [],
    }


async def test_wrong_method_is_405_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.delete("/v1/echo")
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "POST"}
    assert response.json()["code"] == 12


async def test_deadline_from_grpc_timeout_header(client: httpx.AsyncClient) -> None:
    fast = await client.get("/v1/echo", headers={"Grpc-Timeout": "2S"})
    assert 0 < fast.json()["deadlineS"] <= 2.5
    default = await client.get("/v1/echo")
    assert 5 < default.json()["deadlineS"] <= 30.5
    bad = await client.get("/v1/echo", headers={"Grpc-Timeout": "soon"})
    assert bad.status_code == 400
    assert "Grpc-Timeout" in bad.json()["message"]


async def test_deadline_exceeded_is_504(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/fail", json={"sleep": "2s"}, headers={"Grpc-Timeout": "50m"})
    assert response.status_code == 504
    assert response.json()["code"] == 4


def test_undecodable_detail_type_is_kept_as_bytes() -> None:
    from google.protobuf import any_pb2
    from google.rpc import status_pb2

    rich = status_pb2.Status(
        code=9, message="x", details=[any_pb2.Any(type_url="example.com/no.Such", value=b"\x01")]
    )
    err = from_status(
        grpc.StatusCode.FAILED_PRECONDITION,
        "nope",
        [("grpc-status-details-bin", rich.SerializeToString())],
        None,
    )
    assert err.status == 400
    assert err.body["details"] == [{"@type": "example.com/no.Such", "value": "AQ=="}]


def test_field_violation_paths_become_the_json_names_the_client_sent() -> None:
    from google.protobuf import descriptor_pb2

    from gateway.errors import json_field_path

    # A message with a nested message, a repeated message and a map, built in a private pool.
    file = descriptor_pb2.FileDescriptorProto(name="paths.proto", package="t", syntax="proto3")
    inner = file.message_type.add(name="Inner")
    inner.field.add(name="display_name", number=1, type=9, label=1, json_name="displayName")
    outer = file.message_type.add(name="Outer")
    outer.field.add(
        name="course_item", number=1, type=11, label=1, type_name=".t.Inner",
        json_name="courseItem",
    )  # fmt: skip
    outer.field.add(
        name="lesson_items", number=2, type=11, label=3, type_name=".t.Inner",
        json_name="lessonItems",
    )  # fmt: skip
    pool = DescriptorPool()
    pool.Add(file)
    message = pool.FindMessageTypeByName("t.Outer")
    assert json_field_path("course_item.display_name", message) == "courseItem.displayName"
    assert json_field_path("lesson_items[2].display_name", message) == (
        "lessonItems[2].displayName"
    )
    # Already JSON, unknown, or malformed: left alone past the first unresolved segment.
    assert json_field_path("courseItem", message) == "courseItem"
    assert json_field_path("nope.display_name", message) == "nope.display_name"
    assert json_field_path("course_item.a b", message) == "courseItem.a b"
    assert json_field_path("", message) == ""
    assert json_field_path("course_item", None) == "course_item"


def test_field_names_in_violation_texts_become_json_names() -> None:
    from google.protobuf import any_pb2, descriptor_pb2
    from google.rpc import error_details_pb2, status_pb2

    from gateway.errors import json_field_words

    # An update request holding a resource: the mask names the resource's fields.
    file = descriptor_pb2.FileDescriptorProto(name="words.proto", package="w", syntax="proto3")
    thing = file.message_type.add(name="Thing")
    thing.field.add(name="close_time", number=1, type=9, label=1, json_name="closeTime")
    thing.field.add(name="title", number=2, type=9, label=1, json_name="title")
    update = file.message_type.add(name="UpdateThingRequest")
    update.field.add(
        name="the_thing", number=1, type=11, label=1, type_name=".w.Thing", json_name="theThing"
    )
    update.field.add(name="update_mask", number=2, type=9, label=1, json_name="updateMask")
    pool = DescriptorPool()
    pool.Add(file)
    request = pool.FindMessageTypeByName("w.UpdateThingRequest")
    said = "unknown field(s) slug; updatable: close_time, title"
    assert json_field_words(said, request) == "unknown field(s) slug; updatable: closeTime, title"
    # Words that are no field of the request, and quoted input, stay as they are.
    assert json_field_words('not_a_field or "close_time"', request) == (
        'not_a_field or "close_time"'
    )
    assert json_field_words("close_time", None) == "close_time"

    bad = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field="update_mask", description=said)
        ]
    )
    detail = any_pb2.Any()
    detail.Pack(bad)
    rich = status_pb2.Status(code=3, message="update_mask: " + said, details=[detail])
    err = from_status(
        grpc.StatusCode.INVALID_ARGUMENT,
        "update_mask: " + said,
        [("grpc-status-details-bin", rich.SerializeToString())],
        None,
        request,
    )
    assert err.body["message"] == "updateMask: unknown field(s) slug; updatable: closeTime, title"
    [violation] = err.body["details"][0]["fieldViolations"]
    assert violation == {
        "field": "updateMask",
        "description": "unknown field(s) slug; updatable: closeTime, title",
    }
