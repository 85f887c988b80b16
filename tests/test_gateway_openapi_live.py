"""The live contract through the gateway: reflection serves the contract's comments (from
learnflow/v1/contract.binpb), so /openapi.json has summaries and descriptions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from google.protobuf import descriptor_pb2
from openapi_spec_validator import validate

from learnflow.server import Backend, commented_files
from tests.gateway_support import RunningServer, running_gateway


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
