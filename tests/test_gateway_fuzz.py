"""Property-based fuzzing of the live gateway with schemathesis, driven by its own OpenAPI.

Every operation of /openapi.json gets valid (positive) and invalid (negative) requests over
real HTTP, authenticated as an admin so role checks do not stop the requests at the door.
Each response must not be a 5xx, must have a documented status, content type and headers,
and its body must conform to the documented schema (the success schema or google.rpc.Status).
Invalid requests must be refused with a 4xx.

The number of examples per operation and mode comes from LEARNFLOW_FUZZ_EXAMPLES (default 25;
the whole run stays well under two minutes on two cores). The seed is fixed unless
LEARNFLOW_FUZZ_SEED says otherwise (`random`, or the number a failure report quotes).
"""

from __future__ import annotations

import asyncio
import os
import random
import warnings
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from learnflow.server import Backend
from tests.gateway_support import RunningServer, running_gateway
from tests.support import Caller

EXAMPLES = int(os.environ.get("LEARNFLOW_FUZZ_EXAMPLES", "25"))
# Fixed by default so that `make test` is reproducible; LEARNFLOW_FUZZ_SEED=random explores.
_SEED = os.environ.get("LEARNFLOW_FUZZ_SEED", "20251124")
SEED = random.randrange(2**32) if _SEED == "random" else int(_SEED)
UNIMPLEMENTED = 12
COMMON_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
async def gateway(backend: Backend) -> AsyncIterator[RunningServer]:
    async with running_gateway(f"127.0.0.1:{backend.port}") as running:
        yield running


async def fetch_document(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        answer = await http.get("/openapi.json")
    assert answer.status_code == 200, answer.text
    document: dict[str, Any] = answer.json()
    return document


@dataclass
class Findings:
    failures: list[str] = field(default_factory=list)
    # Operations whose gRPC method the backend does not serve (yet): UNIMPLEMENTED / 501.
    unserved: set[str] = field(default_factory=set)
    requests: int = 0
    nothing_to_negate: list[str] = field(default_factory=list)


def _unimplemented(response: requests.Response) -> bool:
    if response.status_code != 501:
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("code") == UNIMPLEMENTED


def fuzz_operations(
    document: dict[str, Any], base_url: str, token: str, *, examples: int, seed: int
) -> Findings:
    """Runs in a worker thread: blocking HTTP while the test loop serves gateway and backend."""
    schema = schemathesis.openapi.from_dict(document)
    findings = Findings()
    session = requests.Session()
    headers = {"Authorization": f"Bearer {token}"}
    operations = []
    for result in schema.get_all_operations():
        if isinstance(result, Ok):
            operations.append(result.ok())
        else:  # the document describes something schemathesis cannot even call
            error = result.err()
            findings.failures.append(f"{error.method} {error.path}: {error} ({error.__cause__!r})")
    # Logging out everywhere would spend the token the rest of the run needs: do it last.
    operations.sort(key=lambda op: op.path.endswith(":revoke"))
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            checks = COMMON_CHECKS + ([negative_data_rejection] if mode.is_negative else [])
            run_one(operation, mode, checks, base_url, session, headers, findings, examples, seed)
    return findings


def run_one(
    operation: Any,
    mode: GenerationMode,
    checks: list[Callable[..., Any]],
    base_url: str,
    session: requests.Session,
    headers: dict[str, str],
    findings: Findings,
    examples: int,
    seed: int,
) -> None:
    label = f"{operation.method.upper()} {operation.path} [{mode.value}]"
    failed = False

    @hypothesis.seed(seed)
    @hypothesis.settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case: Any) -> None:
        nonlocal failed
        if failed:
            return  # one finding per operation and mode is enough to act on
        response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
        findings.requests += 1
        if _unimplemented(response):
            findings.unserved.add(f"{operation.method.upper()} {operation.path}")
            return
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except (Exception, BaseExceptionGroup) as exc:  # a group of check failures
            failed = True
            findings.failures.append(
                f"{label}: {exc}\n  request: {case.as_curl_command(headers=headers)}\n"
                f"  response {response.status_code}: {response.text[:500]}"
            )

    try:
        fuzz()
    except hypothesis.errors.Unsatisfiable:
        # Nothing to make invalid (no parameters, no body): fine for negative mode only.
        if not mode.is_negative:
            raise
        findings.nothing_to_negate.append(label)


async def test_openapi_document_is_valid_openapi_3_1(gateway: RunningServer) -> None:
    document = await fetch_document(gateway.url)
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema
    assert document["openapi"].startswith("3.1")
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


async def test_fuzzed_requests_get_no_5xx_and_schema_conforming_answers(
    gateway: RunningServer, channel: Any, postgres_url: str
) -> None:
    admin = await Caller.with_role(channel, postgres_url, "admin", name="Fuzz Admin")
    document = await fetch_document(gateway.url)
    findings = await asyncio.to_thread(
        fuzz_operations,
        document,
        gateway.url,
        admin.access_token,
        examples=EXAMPLES,
        seed=SEED,
    )
    operations = sum(len(item) for item in document["paths"].values())
    # The run really exercised the API: at least one request per operation and mode.
    assert findings.requests >= 2 * operations - len(findings.nothing_to_negate)
    if findings.unserved:
        warnings.warn(
            "not served by the backend (UNIMPLEMENTED), fuzzed for nothing: "
            + ", ".join(sorted(findings.unserved)),
            stacklevel=1,
        )
    assert not findings.failures, f"seed {SEED}:\n\n" + "\n\n".join(findings.failures)
