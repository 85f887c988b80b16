"""The OpenAPI 3.1 document generated from reflection."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import descriptor_pb2
from openapi_schema_validator import OAS31Validator, validate
from openapi_spec_validator import validate as validate_spec

from gateway.descriptors import build_schema
from gateway.openapi import build_document
from gateway.routing import Router


@pytest.fixture
async def doc(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def schemas(doc: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = doc["components"]["schemas"]
    return found


def param(operation: dict[str, Any], name: str) -> dict[str, Any]:
    matches: list[dict[str, Any]] = [
        p for p in operation["parameters"] if "$ref" not in p and p["name"] == name
    ]
    assert len(matches) == 1, name
    return matches[0]


def test_document_is_valid_openapi_3_1(doc: dict[str, Any]) -> None:
    assert doc["openapi"] == "3.1.0"
    validate_spec(doc)  # raises on any violation of the OpenAPI 3.1 schema


def test_every_route_is_documented(doc: dict[str, Any]) -> None:
    paths = doc["paths"]
    # `patch: /v1/things/{thing.id}` is the same OpenAPI path as `/v1/things/{thing_id}`: one
    # path item, one plain parameter name, which says the field it binds.
    assert set(paths["/v1/things/{thing_id}"]) == {"get", "put", "delete", "patch"}
    assert "/v1/things/{thing.id}" not in paths
    patch = param(paths["/v1/things/{thing_id}"]["patch"], "thing_id")
    assert patch["in"] == "path"
    assert "`thing.id`" in patch["description"]
    assert "post" in paths["/v1/things/{thing_id}:publish"]
    assert "get" in paths["/v1/{name}"]  # `{name=projects/*/docs/**}`
    assert "SEARCH" in paths["/v1/{name}/search"]["x-custom-methods"]
    assert "get" in paths["/v1/shelves/{shelf}/*/books/{book}"]
    assert set(paths["/v1/echo"]) == {"get", "post"}
    ids = [
        op["operationId"] for item in paths.values() for op in item.values() if "operationId" in op
    ]
    assert len(ids) == len(set(ids))
    assert all("Hidden" not in i for i in ids)
    shapes = [re.sub(r"\{[^}]*\}", "{}", path) for path in paths]
    assert len(shapes) == len(set(shapes)), "two paths differ only in parameter names"
    assert not [path for path in paths if re.search(r"\{[^}]*[^\w{}][^}]*\}", path)]
    deep = param(paths["/v1/{name}"]["get"], "name")
    assert deep["in"] == "path" and deep["required"] is True
    assert "projects/*/docs/**" in deep["description"]


def test_parameters_have_types(doc: dict[str, Any]) -> None:
    echo = doc["paths"]["/v1/echo"]["get"]
    assert param(echo, "big")["schema"] == {
        "type": "string",
        "format": "int64",
        "pattern": "^-?[0-9]+$",
    }
    assert param(echo, "color")["schema"] == {"$ref": "#/components/schemas/Color"}
    assert param(echo, "when")["schema"]["format"] == "date-time"
    assert param(echo, "limit")["schema"]["type"] == "integer"
    assert param(echo, "inner.level")["schema"]["format"] == "int32"
    tags = param(echo, "tags")
    # Size limits (the `gwtest.v1.bounds` option) apply to query parameters too.
    assert tags["schema"] == {
        "type": "array",
        "items": {"type": "string", "maxLength": 50},
        "maxItems": 20,
    }
    assert tags["explode"] is True
    names = {p["name"] for p in echo["parameters"] if "$ref" not in p}
    # Maps, Struct and messages have no query form.
    assert not names & {"labels", "extra", "inner"}
    get_thing = doc["paths"]["/v1/shelves/{shelf}/things/{thing_id}"]["get"]
    assert [p.get("in") or p["$ref"] for p in get_thing["parameters"]] == [
        "path",
        "path",
        "query",
        "#/components/parameters/ConsistencyToken",  # a read may wait for a write
    ]
    # body "*": no query parameters, the body schema leaves out the path-bound field.
    replace = doc["paths"]["/v1/things/{thing_id}"]["put"]
    assert [p["name"] for p in replace["parameters"]] == ["thing_id"]
    body = replace["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["properties"]) == {"displayName", "inner"}


def test_message_schemas_follow_proto3_json(doc: dict[str, Any]) -> None:
    thing = schemas(doc)["Thing"]
    props = thing["properties"]
    assert thing["additionalProperties"] is False
    assert thing["required"] == ["displayName"]
    assert props["id"]["readOnly"] is True
    assert props["big"]["type"] == "string"
    assert props["ubig"]["format"] == "uint64"
    assert props["when"] == {"type": "string", "format": "date-time"}
    assert props["ttl"]["type"] == "string" and props["ttl"]["pattern"].endswith("s$")
    assert props["mask"]["type"] == "string"
    assert props["limit"] == {"type": "integer", "format": "int32"}
    assert props["enabled"] == {"type": "boolean"}
    assert props["extra"] == {"type": "object", "additionalProperties": True}
    assert props["labels"] == {"type": "object", "additionalProperties": {"type": "string"}}
    assert props["palette"]["items"] == {"$ref": "#/components/schemas/Color"}
    assert props["blob"]["contentEncoding"] == "base64"
    assert thing["x-oneofs"] == {"choice": ["text", "number"]}
    assert [choice["title"] for choice in thing["oneOf"]] == ["text", "number", "none"]
    assert "oneof `choice`" in props["text"]["description"]
    assert schemas(doc)["Color"] == {
        "type": "string",
        "enum": ["COLOR_UNSPECIFIED", "COLOR_RED", "COLOR_BLUE"],
    }


def test_operations_responses_security_and_extensions(doc: dict[str, Any]) -> None:
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
    }
    status = schemas(doc)["Status"]
    assert set(status["properties"]) == {"code", "message", "details"}
    create = doc["paths"]["/v1/shelves/{shelf}/things"]["post"]
    assert create["responses"]["default"] == {"$ref": "#/components/responses/Error"}
    error = doc["components"]["responses"]["Error"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/Status"}
    assert create["requestBody"]["required"] is True  # `thing` is REQUIRED
    assert create["x-gwtest.v1.policy"] == {
        "audience": "authenticated",
        "roles": ["ROLE_WRITER"],
        "burst": 5,
    }
    assert "x-gwtest.v1.policy" not in doc["paths"]["/v1/echo"]["get"]
    inner = doc["paths"]["/v1/things/{thing_id}/inner"]["get"]
    assert inner["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Inner"
    }
    stream = doc["paths"]["/v1/things:stream"]["get"]["responses"]["200"]["content"]
    assert set(stream) == {"application/x-ndjson", "text/event-stream"}


async def test_real_responses_match_their_schemas(
    client: httpx.AsyncClient, doc: dict[str, Any]
) -> None:
    def check(instance: Any, name: str) -> None:
        schema = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
        validate(instance, schema, cls=OAS31Validator)

    thing = (await client.get("/v1/things/t1")).json()
    check(thing, "Thing")
    echo = (await client.get("/v1/echo?when=2024-01-02T03:04:05Z&ttl=2s&limit=3&text=x")).json()
    check(echo, "EchoResponse")
    error = (await client.post("/v1/fail", json={"code": 3, "badField": "f"})).json()
    check(error, "Status")


def test_comments_from_source_info(descriptor_set: Path) -> None:
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes()).file
    schema = build_schema(["gwtest.v1.ThingService"], {f.name: f for f in files})
    router = Router.for_methods(schema.services[0].methods)
    doc = build_document(schema, router, title="Test", version="1")
    validate_spec(doc)
    assert doc["info"] == {"title": "Test", "version": "1"}
    create = doc["paths"]["/v1/shelves/{shelf}/things"]["post"]
    assert create["summary"] == "Creates a thing on a shelf."
    thing = doc["components"]["schemas"]["Thing"]
    assert thing["description"] == "The resource of the tests."
    assert thing["properties"]["displayName"]["description"] == "Human readable name."
    assert "- `COLOR_RED`: Red." in doc["components"]["schemas"]["Color"]["description"]
    validate_only = param(create, "validateOnly")
    assert validate_only["description"] == "Asks the server to validate only."


def test_size_limit_options_become_max_length_and_max_items(doc: dict[str, Any]) -> None:
    # `gwtest.v1.bounds` is a field option the gateway has never heard of: its `max_length` /
    # `max_items` fields are what make it a size limit.
    props = schemas(doc)["Thing"]["properties"]
    assert props["displayName"]["maxLength"] == 200
    assert props["tags"]["maxItems"] == 20
    assert props["tags"]["items"] == {"type": "string", "maxLength": 50}
    assert props["blob"]["maxLength"] == 40  # 30 bytes in base64
    assert props["mask"]["maxLength"] == 3 * 17 - 1  # three paths of 16, two commas
    # Fields without the option stay unbounded.
    assert "maxLength" not in props["id"] and "maxItems" not in props["palette"]
    assert "maxLength" not in schemas(doc)["Inner"]["properties"]["note"]


async def test_post_bodies_are_required_and_the_consistency_header_is_described_once(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    posts = [
        item["post"] for item in spec["paths"].values() if "requestBody" in item.get("post", {})
    ]
    assert posts and all(op["requestBody"]["required"] is True for op in posts)
    header = spec["components"]["headers"]["ConsistencyToken"]
    assert header["schema"] == {"type": "string"}
    for item in spec["paths"].values():
        for op in item.values():
            if isinstance(op, dict) and "responses" in op:
                ref = op["responses"]["200"]["headers"]["X-Consistency-Token"]
                assert ref == {"$ref": "#/components/headers/ConsistencyToken"}
