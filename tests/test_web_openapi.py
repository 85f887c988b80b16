"""The web client's OpenAPI document (scripts/openapi, built offline from protos/) is the one
the live gateway serves from the backend's reflection: same paths, operations, schemas and
tags, so the typed client in web/src/api cannot drift from the API it calls."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from importlib.machinery import SourceFileLoader
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from learnflow.server import Backend
from tests.gateway_support import RunningServer, running_gateway

ROOT = Path(__file__).resolve().parent.parent


def _script() -> ModuleType:
    loader = SourceFileLoader("learnflow_scripts_openapi", str(ROOT / "scripts" / "openapi"))
    module = ModuleType(loader.name)
    module.__file__ = loader.path
    loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
async def gateway(backend: Backend) -> AsyncIterator[RunningServer]:
    async with running_gateway(f"127.0.0.1:{backend.port}") as running:
        yield running


@pytest.fixture(scope="module")
async def live(gateway: RunningServer) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as http:
        response = await http.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def test_offline_document_is_the_live_one(live: dict[str, Any]) -> None:
    offline: dict[str, Any] = _script().document()
    assert sorted(offline["paths"]) == sorted(live["paths"])
    for path, item in live["paths"].items():
        assert offline["paths"][path] == item, path
    assert sorted(offline["components"]["schemas"]) == sorted(live["components"]["schemas"])
    assert offline["components"] == live["components"]
    assert offline["tags"] == live["tags"]
    # Only the version differs: the live one is the reflected contract's fingerprint.
    assert {k: v for k, v in offline.items() if k != "info"} == {
        k: v for k, v in live.items() if k != "info"
    }
    assert offline["info"]["title"] == live["info"]["title"]


def test_committed_document_is_current() -> None:
    committed = json.loads((ROOT / "web/src/api/openapi.json").read_text(encoding="utf-8"))
    assert committed == _script().document(), "stale: run `make web-api` and commit"


def test_idempotency_keys_go_only_where_the_gateway_takes_them() -> None:
    script = _script()
    keyed = script.keyed_operations(script.document())
    assert "POST /v1/users:register" in keyed
    assert "POST /v1/courses" in keyed
    # Sessions have no request_id: the gateway would refuse an Idempotency-Key there.
    assert "POST /v1/sessions" not in keyed
    assert not any(k.startswith("GET ") for k in keyed)
