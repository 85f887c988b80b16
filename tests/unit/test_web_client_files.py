"""The web client's committed copy of the OpenAPI document (web/src/api/openapi.json, from
which schema.d.ts is generated) is the document the gateway serves — scripts/openapi_document.py
builds that one offline and tests/test_gateway_openapi_live.py holds it to the live gateway —
and the list of operations that take an Idempotency-Key matches it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    # scripts/openapi has no .py suffix (it is a command): load it by path.
    from importlib.machinery import SourceFileLoader

    loader = SourceFileLoader("web_openapi_script", str(ROOT / "scripts" / "openapi"))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


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
    generated = (ROOT / "web/src/api/idempotent.gen.ts").read_text(encoding="utf-8")
    assert all(f"'{k}'" in generated for k in keyed)
