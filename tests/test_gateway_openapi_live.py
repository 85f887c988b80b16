"""The live contract through the gateway: reflection serves the contract's comments (from
learnflow/v1/contract.binpb), so /openapi.json has summaries and descriptions; the document is
the one scripts/openapi_document.py writes, and it types what the gateway really answers."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import descriptor_pb2
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from learnflow.server import Backend, commented_files
from tests.gateway_support import HttpUser, RunningServer, register_over_http, running_gateway
from tests.support import Caller

JSON = "application/json"

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "openapi_document.py"


@pytest.fixture(scope="module")
async def gateway(backend: Backend) -> AsyncIterator[RunningServer]:
    async with running_gateway(f"127.0.0.1:{backend.port}") as running:
        yield running


@pytest.fixture(scope="module")
async def spec(gateway: RunningServer) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as http:
        response = await http.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def test_every_contract_file_is_served_with_its_comments() -> None:
    files = commented_files()
    assert files, "contract.binpb is missing or stale: run scripts/protos gen"
    for name, raw in files.items():
        assert name.startswith("learnflow/v1/")
        proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
        assert proto.source_code_info.location, name


def test_every_operation_has_a_summary_from_the_protos(spec: dict[str, Any]) -> None:
    validate(spec)
    operations = [
        op
        for item in spec["paths"].values()
        for op in item.values()
        if isinstance(op, dict) and "operationId" in op
    ]
    assert operations
    missing = [op["operationId"] for op in operations if not op.get("summary")]
    assert not missing, missing
    create = next(op for op in operations if op["operationId"] == "CourseService_CreateCourse")
    assert create["summary"] == "Creates a draft course owned by the caller."
    tags = {tag["name"]: tag for tag in spec["tags"]}
    assert tags["learnflow.v1.CourseService"]["description"].startswith("Authoring")


def test_messages_and_fields_carry_their_comments(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    described = [name for name, s in schemas.items() if s.get("description")]
    assert len(described) > len(schemas) // 2, described
    fields = [
        prop
        for s in schemas.values()
        for prop in s.get("properties", {}).values()
        if isinstance(prop, dict)
    ]
    assert sum(1 for p in fields if p.get("description")) > len(fields) // 2


def _offline_document() -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location("openapi_document", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    document: dict[str, Any] = module.document()
    return document


def test_the_script_writes_the_document_the_gateway_serves(spec: dict[str, Any]) -> None:
    # What a client generator gets without running anything is what the gateway serves.
    offline = _offline_document()
    validate(offline)
    assert offline["paths"] == spec["paths"]
    assert offline["components"] == spec["components"]
    assert offline["info"]["version"] == spec["info"]["version"]  # the same contract files


def _valid(instance: Any, name: str, spec: dict[str, Any]) -> bool:
    schema = {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
    return bool(OAS31Validator(schema).is_valid(instance))


def test_every_request_string_and_list_has_its_limit(spec: dict[str, Any]) -> None:
    """The server refuses to start while a request field lacks `(learnflow.v1.limits)`: the
    document must carry each of them, through references, unions and PATCH bodies."""
    schemas = spec["components"]["schemas"]
    missing: list[str] = []
    seen: set[str] = set()

    def walk(schema: Any, where: str) -> None:
        if not isinstance(schema, dict) or schema.get("readOnly"):
            return
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            if name not in seen:
                seen.add(name)
                walk(schemas[name], name)
            return
        bounded = "maxLength" in schema or "enum" in schema or "format" in schema
        if schema.get("type") == "string" and not bounded:
            missing.append(where)
        if schema.get("type") == "array":
            if "maxItems" not in schema:
                missing.append(where)
            walk(schema["items"], where + "[]")
        for name, prop in schema.get("properties", {}).items():
            walk(prop, f"{where}.{name}")
        for choice in schema.get("oneOf", []):
            walk(choice, where)

    for path, item in spec["paths"].items():
        for verb, op in item.items():
            for param in op.get("parameters", []):
                if "$ref" not in param:
                    walk(param["schema"], f"{verb} {path} {param['name']}")
            body = op.get("requestBody")
            if body:
                walk(body["content"]["application/json"]["schema"], f"{verb} {path} body")
    assert {"LessonUpdate", "CourseUpdate", "QuizInput", "QuizQuestionInput"} <= seen
    assert not missing, missing


def test_access_rules_errors_and_unions_are_documented(spec: dict[str, Any]) -> None:
    paths = spec["paths"]
    create = paths["/v1/courses"]["post"]
    assert create["security"] == [{"bearerAuth": []}]
    assert create["x-required-roles"] == ["ROLE_INSTRUCTOR", "ROLE_ADMIN"]
    assert {"401", "403", "429"} <= set(create["responses"])
    catalog = paths["/v1/courses"]["get"]
    assert catalog["security"] == []
    assert "403" not in catalog["responses"]
    me = paths["/v1/users/me"]["get"]
    assert me["security"] == [{"bearerAuth": []}] and "x-required-roles" not in me
    lesson_patch = paths["/v1/courses/{course_id}/lessons/{lesson_id}"]["patch"]
    body = lesson_patch["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"] == "#/components/schemas/LessonUpdate"
    assert _valid({"position": 1}, "LessonUpdate", spec)
    assert not _valid({"position": 1}, "LessonInput", spec)  # a lesson needs a title
    article = {"title": "t", "article": {"markdown": "# x"}}
    assert _valid(article, "LessonInput", spec)
    assert not _valid({**article, "video": {"url": "https://v.example/x"}}, "LessonInput", spec)
    assert not _valid(article, "Lesson", spec)  # an answered lesson has its id, position...
    assert all("." not in name for name in spec["components"]["schemas"])


async def test_comment_patch_takes_the_mask_in_the_query_and_the_old_body_form_is_deprecated(
    gateway: RunningServer, spec: dict[str, Any], instructor: Caller
) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as http:
        staff = {"Authorization": f"Bearer {instructor.access_token}"}
        created = await http.post(
            "/v1/courses", json={"course": {"title": "Comments, live"}}, headers=staff
        )
        assert created.status_code == 200, created.text
        course_id = created.json()["course"]["id"]
        lesson = await http.post(
            f"/v1/courses/{course_id}/lessons",
            json={"lesson": {"title": "One", "article": {"markdown": "# 1"}}},
            headers=staff,
        )
        assert lesson.status_code == 200, lesson.text
        lesson_id = lesson.json()["lesson"]["id"]
        published = await http.post(f"/v1/courses/{course_id}:publish", json={}, headers=staff)
        assert published.status_code == 200, published.text
        student: HttpUser = await register_over_http(http, name="Commenter")
        enrolled = await http.post(
            f"/v1/courses/{course_id}/enrollments", json={}, headers=student.headers()
        )
        assert enrolled.status_code == 200, enrolled.text
        comments = f"/v1/courses/{course_id}/lessons/{lesson_id}/comments"
        posted = await http.post(
            comments,
            json={"body": "first"},
            headers={**student.headers(), "Idempotency-Key": uuid.uuid4().hex},
        )
        assert posted.status_code == 200, posted.text
        comment_id = posted.json()["comment"]["id"]

        query = await http.patch(
            f"{comments}/{comment_id}",
            params={"updateMask": "body"},
            json={"body": "second"},
            headers=student.headers(),
        )
        assert query.status_code == 200, query.text
        assert query.json()["comment"]["body"] == "second"
        assert "deprecation" not in query.headers
        assert _valid(query.json(), "UpdateCommentResponse", spec)
        old = await http.patch(
            f"{comments}/{comment_id}",
            json={"body": "third", "updateMask": "body"},
            headers=student.headers(),
        )
        assert old.status_code == 200, old.text
        assert old.json()["comment"]["body"] == "third"
        assert old.headers["deprecation"] == "true"

        # A role refusal validates against the Status schema and names who may call.
        denied = await http.post(
            "/v1/courses", json={"course": {"title": "Not mine"}}, headers=student.headers()
        )
        assert denied.status_code == 403
        assert _valid(denied.json(), "Status", spec)
        infos = [
            d
            for d in denied.json()["details"]
            if d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
        ]
        assert infos[0]["metadata"]["allowedRoles"] == "ROLE_INSTRUCTOR,ROLE_ADMIN"


class _Conformance:
    """Checks each answer the live test gets against its operation's 200 schema, which says
    what is always there (`required`); remembers which operations it has seen."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.seen: set[str] = set()

    def check(self, verb: str, path: str, response: httpx.Response, *, media: str = JSON) -> Any:
        assert response.status_code == 200, (verb, path, response.text)
        operation = self.spec["paths"][path][verb]
        schema = operation["responses"]["200"]["content"][media]["schema"]
        body = response.json() if media == JSON else json.loads(response.text.splitlines()[0])
        self.conforms(body, schema, f"{verb} {path}")
        self.seen.add(operation["operationId"])
        return body

    def conforms(self, body: Any, schema: dict[str, Any], where: str) -> None:
        validator = OAS31Validator({**schema, "components": self.spec["components"]})
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]
        assert not errors, (where, errors, body)


async def test_every_get_answers_every_field_its_schema_requires(
    gateway: RunningServer, spec: dict[str, Any], instructor: Caller, admin: Caller
) -> None:
    """Every GET of the API, called for real on data that exercises it (a published course, a
    lesson, an enrollment, a comment, a certificate), answers what its schema says is always
    there; so do the writes that make that data."""
    seen = _Conformance(spec)
    staff = {"Authorization": f"Bearer {instructor.access_token}"}
    root = {"Authorization": f"Bearer {admin.access_token}"}
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as http:
        created = await http.post(
            "/v1/courses",
            json={"course": {"title": "Required fields, live", "tags": ["openapi"]}},
            headers=staff,
        )
        course = seen.check("post", "/v1/courses", created)["course"]
        course_id, slug = course["id"], course["slug"]
        lesson_path = "/v1/courses/{course_id}/lessons"
        made = await http.post(
            f"/v1/courses/{course_id}/lessons",
            json={"lesson": {"title": "Only", "article": {"markdown": "# 1"}}},
            headers=staff,
        )
        lesson_id = seen.check("post", lesson_path, made)["lesson"]["id"]
        published = await http.post(f"/v1/courses/{course_id}:publish", json={}, headers=staff)
        staff_token = seen.check("post", "/v1/courses/{course_id}:publish", published)[
            "consistencyToken"
        ]
        student: HttpUser = await register_over_http(http, name="Required Reader")
        enrolled = await http.post(
            f"/v1/courses/{course_id}/enrollments", json={}, headers=student.headers()
        )
        seen.check("post", "/v1/courses/{course_id}/enrollments", enrolled)
        lesson = f"/v1/courses/{course_id}/lessons/{lesson_id}"
        posted = await http.post(
            f"{lesson}/comments", json={"body": "a question"}, headers=student.headers()
        )
        seen.check("post", lesson_path + "/{lesson_id}/comments", posted)
        done = await http.post(f"{lesson}:complete", json={}, headers=student.headers())
        token = seen.check("post", lesson_path + "/{lesson_id}:complete", done)["consistencyToken"]
        reader = student.headers(token)
        progress = await http.get(f"/v1/users/me/courses/{course_id}/progress", headers=reader)
        certificate_id = seen.check("get", "/v1/users/me/courses/{course_id}/progress", progress)[
            "progress"
        ]["certificateId"]
        assert certificate_id, progress.text  # the only lesson done: the course is complete

        staff_reads = {**staff, "X-Consistency-Token": token}
        admin_reads = {**root, "X-Consistency-Token": token}
        gets: list[tuple[str, str, dict[str, str]]] = [
            ("/v1/courses", "/v1/courses", {}),
            ("/v1/courses/{course_id}", f"/v1/courses/{course_id}", {}),
            ("/v1/courses:bySlug/{slug}", f"/v1/courses:bySlug/{slug}", {}),
            ("/v1/courses/{course_id}/lessons/{lesson_id}", lesson, reader),
            ("/v1/courses/{course_id}/lessons/{lesson_id}/comments", f"{lesson}/comments", reader),
            ("/v1/certificates/{certificate_id}", f"/v1/certificates/{certificate_id}", {}),
            ("/v1/users/me", "/v1/users/me", reader),
            ("/v1/users/me/enrollments", "/v1/users/me/enrollments", reader),
            ("/.well-known/jwks.json", "/.well-known/jwks.json", {}),
            (
                "/v1/users/me/authoredCourses",
                "/v1/users/me/authoredCourses",
                {**staff, "X-Consistency-Token": staff_token},
            ),
            (
                "/v1/courses/{course_id}/enrollments",
                f"/v1/courses/{course_id}/enrollments",
                staff_reads,
            ),
            ("/v1/users", "/v1/users", admin_reads),
            ("/v1/users/{user_id}", f"/v1/users/{student.user_id}", admin_reads),
            ("/v1/auditEvents", "/v1/auditEvents", admin_reads),
        ]
        for template, url, headers in gets:
            seen.check("get", template, await http.get(url, headers=headers))
        watch = "/v1/users/me/courses/{course_id}/progress:watch"
        async with (
            asyncio.timeout(30),
            http.stream(
                "GET", f"/v1/users/me/courses/{course_id}/progress:watch", headers=reader
            ) as stream,
        ):
            assert stream.status_code == 200
            async for line in stream.aiter_lines():
                schema = spec["paths"][watch]["get"]["responses"]["200"]["content"]
                seen.conforms(json.loads(line), schema["application/x-ndjson"]["schema"], watch)
                seen.seen.add(spec["paths"][watch]["get"]["operationId"])
                break

    every_get = {item["get"]["operationId"] for item in spec["paths"].values() if "get" in item}
    assert every_get - seen.seen == set(), "a GET the live check does not call"
    # The check has teeth: the schemas require what a client reads without `?.`.
    schemas = spec["components"]["schemas"]
    assert {"id", "title", "slug", "tags", "lessonCount"} <= set(schemas["Course"]["required"])
    assert "course" not in schemas["GetCourseResponse"].get("required", [])  # has presence


async def test_update_mask_errors_list_the_paths_as_the_client_sends_them(
    gateway: RunningServer, instructor: Caller
) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as http:
        staff = {"Authorization": f"Bearer {instructor.access_token}"}
        created = await http.post(
            "/v1/courses", json={"course": {"title": "Masks, live"}}, headers=staff
        )
        assert created.status_code == 200, created.text
        course = f"/v1/courses/{created.json()['course']['id']}"
        refused = await http.patch(course, params={"updateMask": "slug"}, json={}, headers=staff)
        assert refused.status_code == 400, refused.text
        body = refused.json()
        [violation] = body["details"][0]["fieldViolations"]
        assert violation["field"] == "updateMask"
        # The backend lists proto names; the client must send lowerCamel ones (the gateway
        # refuses `enrollment_close_time` in a mask), so that is what it reads.
        assert "enrollmentCloseTime" in violation["description"], violation
        assert "_" not in violation["description"] and "_" not in body["message"], body
        accepted = await http.patch(
            course,
            params={"updateMask": "enrollmentCloseTime"},
            json={"enrollmentCloseTime": "2030-01-01T00:00:00Z"},
            headers=staff,
        )
        assert accepted.status_code == 200, accepted.text
