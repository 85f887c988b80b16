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
    thing = schemas(doc)["ThingInput"]  # what a client sends (CreateThingRequest.thing)
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


def _valid(instance: Any, name: str, doc: dict[str, Any]) -> bool:
    schema = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
    return bool(OAS31Validator(schema).is_valid(instance))


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for item in node for r in _refs(item)]
    return []


def test_schema_names_are_short_and_dotless(doc: dict[str, Any]) -> None:
    names = set(schemas(doc))
    assert all(re.fullmatch(r"[A-Za-z0-9_]+", name) for name in names), sorted(names)
    # Short names where unique...
    assert {"Thing", "Color", "Inner", "Status", "BadRequest", "FieldViolation"} <= names
    assert {"ErrorInfo", "RetryInfo", "ThingUpdate", "Any"} <= names
    # ...PascalCase of the full name for both sides of a clash (two `Violation`s).
    assert "Violation" not in names
    assert {"GoogleRpcQuotaFailureViolation", "GoogleRpcPreconditionFailureViolation"} <= names
    # Every reference resolves, discriminator mappings included.
    refs = _refs(doc) + [
        ref
        for schema in schemas(doc).values()
        for ref in schema.get("properties", {})
        .get("details", {})
        .get("items", {})
        .get("discriminator", {})
        .get("mapping", {})
        .values()
    ]
    for ref in refs:
        kind, name = ref.removeprefix("#/components/").split("/")
        assert name in doc["components"][kind], ref


def test_clashing_names_take_the_pascal_case_full_name() -> None:
    from gateway.openapi import _component_names

    names = _component_names(
        [
            "google.rpc.Status",
            "a.v1.Status",
            "a.v1.Course",
            "a.v1.Course#update",
            "a.v1.Course#input",
            "a.v1.CreateCourseRequest#input",
            "b.Thing_x",
            "b.Thing_x#input",
            "c.Thing_x#input",
        ]
    )
    assert names == {
        "google.rpc.Status": "GoogleRpcStatus",
        "a.v1.Status": "AV1Status",
        "a.v1.Course": "Course",  # the response form keeps the name
        "a.v1.Course#update": "CourseUpdate",
        "a.v1.Course#input": "CourseInput",
        "a.v1.CreateCourseRequest#input": "CreateCourseRequest",  # only ever sent
        # A clash is settled per message: all forms of one message share the long name.
        "b.Thing_x": "BThingX",
        "b.Thing_x#input": "BThingXInput",
        "c.Thing_x#input": "CThingX",
    }


async def test_status_details_are_a_discriminated_union(
    client: httpx.AsyncClient, doc: dict[str, Any]
) -> None:
    items = schemas(doc)["Status"]["properties"]["details"]["items"]
    mapping = items["discriminator"]["mapping"]
    assert items["discriminator"]["propertyName"] == "@type"
    assert mapping["type.googleapis.com/google.rpc.BadRequest"] == "#/components/schemas/BadRequest"
    assert {"ErrorInfo", "RetryInfo", "PreconditionFailure", "ResourceInfo"} <= {
        ref.rsplit("/", 1)[-1] for ref in mapping.values()
    }
    assert sorted(mapping.values()) == sorted(ref["$ref"] for ref in items["oneOf"])
    for url, ref in mapping.items():
        detail = schemas(doc)[ref.rsplit("/", 1)[-1]]
        assert detail["properties"]["@type"] == {"type": "string", "const": url}
        assert detail["required"][0] == "@type"
    violation = schemas(doc)["BadRequest"]["properties"]["fieldViolations"]["items"]
    assert violation == {"$ref": "#/components/schemas/FieldViolation"}
    # Real answers validate, and a detail of the wrong shape does not.
    error = await client.post(
        "/v1/fail", json={"code": 8, "badField": "displayName", "retryDelay": "2s"}
    )
    body = error.json()
    assert {d["@type"].rsplit(".", 1)[-1] for d in body["details"]} == {"BadRequest", "RetryInfo"}
    assert _valid(body, "Status", doc)
    body["details"][0]["fieldViolations"] = "not a list"
    assert not _valid(body, "Status", doc)


def test_each_operation_lists_the_errors_it_can_return(doc: dict[str, Any]) -> None:
    paths = doc["paths"]
    create = paths["/v1/shelves/{shelf}/things"]["post"]["responses"]
    assert set(create) == {
        "200",
        "400",
        "401",
        "403",
        "404",
        "409",
        "413",
        "429",
        "503",
        "504",
        "default",
    }
    assert create["429"] == {"$ref": "#/components/responses/TooManyRequests"}
    featured = paths["/v1/things/featured"]["get"]["responses"]
    # No path parameter: nothing to be missing; a read: no conflict; no body.
    assert not {"404", "409", "413"} & set(featured)
    rename = paths["/v1/things/{thing_id}:rename"]["patch"]["responses"]
    assert "403" not in rename  # public
    responses = doc["components"]["responses"]
    retry = {"$ref": "#/components/headers/RetryAfter"}
    assert responses["TooManyRequests"]["headers"]["Retry-After"] == retry
    assert responses["Unavailable"]["headers"]["Retry-After"] == retry
    assert "WWW-Authenticate" in responses["Unauthenticated"]["headers"]
    # The descriptions say which gRPC codes the gateway maps to each status (gateway.errors).
    assert "`FAILED_PRECONDITION`" in responses["BadRequest"]["description"]
    assert "`ABORTED`" in responses["Conflict"]["description"]
    assert "`RESOURCE_EXHAUSTED`" in responses["TooManyRequests"]["description"]
    for response in responses.values():
        schema = response["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Status"}


def test_security_follows_the_access_rule_options(doc: dict[str, Any]) -> None:
    paths = doc["paths"]
    create = paths["/v1/shelves/{shelf}/things"]["post"]
    assert create["security"] == [{"bearerAuth": []}]
    assert create["x-required-roles"] == ["ROLE_WRITER"]
    assert "`ROLE_WRITER`" in create["description"]
    rename = paths["/v1/things/{thing_id}:rename"]["patch"]
    assert rename["security"] == []
    assert "x-required-roles" not in rename
    # No rule at all: a token when the backend wants one.
    assert paths["/v1/things/featured"]["get"]["security"] == [{"bearerAuth": []}, {}]


def test_patch_bodies_accept_partial_updates(doc: dict[str, Any]) -> None:
    patch = doc["paths"]["/v1/things/{thing_id}"]["patch"]
    body = patch["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/ThingUpdate"}
    update = schemas(doc)["ThingUpdate"]
    assert "required" not in update
    assert "id" not in update["properties"]  # output only
    assert _valid({"tags": ["a"]}, "ThingUpdate", doc)
    assert not _valid({"tags": ["a"]}, "ThingInput", doc)  # displayName is required there
    assert not _valid({"tags": ["a"], "bogus": 1}, "ThingUpdate", doc)


def test_oneofs_are_one_of(doc: dict[str, Any]) -> None:
    thing = schemas(doc)["ThingInput"]
    text = thing["oneOf"][0]
    assert text["properties"] == {"text": {"type": "string"}, "number": False}
    assert text["required"] == ["text"]
    assert _valid({"displayName": "x", "text": "a"}, "ThingInput", doc)
    assert _valid({"displayName": "x", "number": 2}, "ThingInput", doc)
    assert _valid({"displayName": "x"}, "ThingInput", doc)
    assert not _valid({"displayName": "x", "text": "a", "number": 2}, "ThingInput", doc)
    assert schemas(doc)["Thing"]["oneOf"] == thing["oneOf"]  # the response form's too


def test_immutable_and_output_only_fields_are_marked(doc: dict[str, Any]) -> None:
    props = schemas(doc)["Thing"]["properties"]
    assert props["color"]["x-immutable"] is True
    assert "Immutable" in props["color"]["description"]
    assert props["id"]["readOnly"] is True


def test_headers_are_described_once_and_referenced(doc: dict[str, Any]) -> None:
    components = doc["components"]
    assert components["parameters"]["IdempotencyKey"]["in"] == "header"
    assert components["parameters"]["ConsistencyToken"]["name"] == "X-Consistency-Token"
    rename = doc["paths"]["/v1/things/{thing_id}:rename"]["patch"]
    assert {"$ref": "#/components/parameters/IdempotencyKey"} in rename["parameters"]
    body = rename["requestBody"]["content"]["application/json"]["schema"]
    assert "Idempotency-Key" in body["properties"]["requestId"]["description"]
    # Reads may wait for a write; writes without an idempotency field take no key.
    create = doc["paths"]["/v1/shelves/{shelf}/things"]["post"]
    assert {"$ref": "#/components/parameters/IdempotencyKey"} not in create.get("parameters", [])
    get = doc["paths"]["/v1/things/{thing_id}"]["get"]
    assert {"$ref": "#/components/parameters/ConsistencyToken"} in get["parameters"]


async def test_update_mask_is_a_query_parameter_even_with_a_whole_request_body(
    client: httpx.AsyncClient, doc: dict[str, Any]
) -> None:
    rename = doc["paths"]["/v1/things/{thing_id}:rename"]["patch"]
    assert param(rename, "updateMask")["in"] == "query"
    body = rename["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["updateMask"]["deprecated"] is True
    assert rename["responses"]["200"]["headers"]["Deprecation"] == {
        "$ref": "#/components/headers/Deprecation"
    }
    assert "deprecated" in rename["description"]

    query = await client.patch(
        "/v1/things/t1:rename?updateMask=displayName",
        json={"displayName": "new"},
        headers={"Idempotency-Key": "k-1"},
    )
    assert query.status_code == 200, query.text
    assert query.json()["mask"] == "displayName"
    assert query.json()["text"] == "k-1"  # the header filled requestId
    assert "deprecation" not in query.headers
    old = await client.patch(
        "/v1/things/t1:rename", json={"displayName": "new", "updateMask": "displayName"}
    )
    assert old.status_code == 200, old.text
    assert old.json()["mask"] == "displayName"
    assert old.headers["deprecation"] == "true"
    both = await client.patch(
        "/v1/things/t1:rename?updateMask=displayName",
        json={"displayName": "new", "updateMask": "displayName"},
    )
    assert both.status_code == 400
    violation = both.json()["details"][0]["fieldViolations"][0]
    assert violation["field"] == "updateMask"
    other = await client.patch("/v1/things/t1:rename?displayName=x", json={})
    assert other.status_code == 400  # the mask is the only query parameter such a route takes


def test_response_forms_require_what_the_gateway_always_prints(doc: dict[str, Any]) -> None:
    thing = schemas(doc)["Thing"]  # what GET /v1/things/{thing_id} answers
    assert thing["required"] == [
        # proto3 scalars and enums (at their defaults), repeated fields and maps (empty)...
        "id",
        "displayName",
        "color",
        "big",
        "tags",
        "labels",
        "flag",
        "score",
        "blob",
        "ubig",
        "palette",
    ]
    # ...but not what has presence: messages (wrappers and well-known types included) and
    # oneof members may be absent.
    for absent in ("when", "ttl", "limit", "nickname", "inner", "text", "number", "extra"):
        assert absent in thing["properties"] and absent not in thing["required"], absent
    get = doc["paths"]["/v1/things/{thing_id}"]["get"]
    assert get["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Thing"
    }
    create = doc["paths"]["/v1/shelves/{shelf}/things"]["post"]
    body = create["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/ThingInput"}  # body: "thing"
    assert schemas(doc)["Inner"]["required"] == ["note", "level", "shade", "counts"]
    assert "required" not in schemas(doc)["InnerInput"]


async def test_real_answers_have_every_required_field(
    client: httpx.AsyncClient, doc: dict[str, Any]
) -> None:
    answers = {
        "Thing": [
            (await client.get("/v1/things/t1")).json(),
            (await client.get("/v1/things/featured")).json(),  # almost everything at defaults
            (await client.post("/v1/shelves/s/things", json={"displayName": "d"})).json(),
        ],
    }
    for name, bodies in answers.items():
        for body in bodies:
            missing = [f for f in schemas(doc)[name]["required"] if f not in body]
            assert not missing, (name, body)
            assert _valid(body, name, doc), body
    assert "when" not in answers["Thing"][1]  # a message field with presence: absent
    # The response form is the stricter one: a sparse body is input, not an answer.
    assert _valid({"displayName": "d"}, "ThingInput", doc)
    assert not _valid({"displayName": "d"}, "Thing", doc)


def test_identical_forms_are_one_component() -> None:
    from gateway.openapi import _same_forms

    ref = "#/components/schemas/"
    # A and B refer to each other; only their input refs differ: each is one component.
    # C's forms differ in what they require; D's only in referring to C's differing forms.
    components = {
        "p.A": {"properties": {"b": {"$ref": ref + "p.B"}}},
        "p.A#input": {"properties": {"b": {"$ref": ref + "p.B#input"}}},
        "p.B": {"properties": {"a": {"$ref": ref + "p.A"}}},
        "p.B#input": {"properties": {"a": {"$ref": ref + "p.A#input"}}},
        "p.C": {"properties": {"n": {"type": "integer"}}, "required": ["n"]},
        "p.C#input": {"properties": {"n": {"type": "integer"}}},
        "p.D": {"properties": {"c": {"$ref": ref + "p.C"}}},
        "p.D#input": {"properties": {"c": {"$ref": ref + "p.C#input"}}},
    }
    assert _same_forms(components) == {"p.A#input": "p.A", "p.B#input": "p.B"}
