"""Issue 12: request sizes are bounded before any per-element work, over gRPC and HTTP.

A quiz attempt with millions of `choice_indexes` used to be walked element by element (the NUL
scan) before the handler refused it, blocking the event loop for seconds. Now the gRPC server
refuses any message beyond the gateway's body limit before decoding it, and the interceptor
refuses any field beyond its declared limit from `len()` alone.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest

from gateway.settings import Settings as GatewaySettings
from learnflow.server import Backend
from learnflow.settings import Settings
from learnflow.v1 import learning_pb2
from tests.commands_support import Pg, fails, learning
from tests.gateway_support import RunningServer, register_over_http, running_gateway
from tests.support import Caller, field_violations


@pytest.fixture(scope="module")
async def gateway(backend: Backend) -> AsyncIterator[RunningServer]:
    async with running_gateway(f"127.0.0.1:{backend.port}") as running:
        yield running


@pytest.fixture
async def http(gateway: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        yield client


def attempt(*answers: learning_pb2.QuizAnswer) -> learning_pb2.CreateQuizAttemptRequest:
    # A lesson that does not exist: had the handler run, the answer would be NOT_FOUND.
    return learning_pb2.CreateQuizAttemptRequest(
        course_id=str(uuid.uuid4()), lesson_id=str(uuid.uuid4()), answers=answers
    )


def test_the_grpc_receive_limit_is_the_gateways_body_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().max_message_bytes == GatewaySettings().max_body_bytes == 1024 * 1024
    assert Settings.from_env().max_message_bytes == 1024 * 1024
    monkeypatch.setenv("LEARNFLOW_MAX_MESSAGE_BYTES", "2097152")
    assert Settings.from_env().max_message_bytes == 2 * 1024 * 1024


async def test_a_message_beyond_the_receive_limit_is_refused_before_decoding(
    caller: Caller, pg: Pg
) -> None:
    # 3.5 million entries (3.5 MB on the wire): what a direct gRPC client could send before.
    huge = attempt(learning_pb2.QuizAnswer(question_id="q", choice_indexes=[1] * 3_500_000))
    assert huge.ByteSize() > Settings().max_message_bytes
    async with fails(grpc.StatusCode.RESOURCE_EXHAUSTED, pg) as err:
        await learning(caller.channel).CreateQuizAttempt(huge, metadata=caller.metadata())
    assert "larger than max" in (err.value.details() or "")


async def test_an_over_limit_field_is_refused_before_the_nul_scan_and_the_handler(
    caller: Caller, pg: Pg
) -> None:
    # Just under the receive limit: 1,000,000 indexes of one byte each. The question id holds
    # a NUL, which the NUL scan would report: it is not reached, nor is the handler.
    big = attempt(learning_pb2.QuizAnswer(question_id="q\x00", choice_indexes=[1] * 1_000_000))
    assert big.ByteSize() < Settings().max_message_bytes
    started = time.perf_counter()
    async with fails(grpc.StatusCode.INVALID_ARGUMENT, pg) as err:
        await learning(caller.channel).CreateQuizAttempt(big, metadata=caller.metadata())
    elapsed = time.perf_counter() - started
    assert field_violations(err.value) == {
        "answers[0].choice_indexes": "must have at most 10 items"
    }
    # Loose, so as not to flake: before the fix this took seconds of CPU.
    assert elapsed < 1.0, elapsed

    many = attempt(*[learning_pb2.QuizAnswer(question_id="q")] * 51)
    async with fails(grpc.StatusCode.INVALID_ARGUMENT, pg) as err:
        await learning(caller.channel).CreateQuizAttempt(many, metadata=caller.metadata())
    assert field_violations(err.value) == {"answers": "must have at most 50 items"}


async def test_within_limits_the_handler_answers(caller: Caller) -> None:
    fine = attempt(learning_pb2.QuizAnswer(question_id="q", choice_indexes=[0]))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await learning(caller.channel).CreateQuizAttempt(fine, metadata=caller.metadata())
    assert err.value.code() == grpc.StatusCode.NOT_FOUND  # the handler looked for the course


async def test_over_http_a_one_megabyte_attempt_is_a_quick_400(http: httpx.AsyncClient) -> None:
    student = await register_over_http(http, name="Limits Student")
    course, lesson = uuid.uuid4(), uuid.uuid4()
    body = (
        b'{"answers":[{"questionId":"q","choiceIndexes":[' + b",".join([b"0"] * 520_000) + b"]}]}"
    )
    assert len(body) < GatewaySettings().max_body_bytes
    response = await http.post(
        f"/v1/courses/{course}/lessons/{lesson}/quizAttempts",
        content=body,
        headers={**student.headers(), "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert "must have at most 10 items" in response.text


async def test_openapi_shows_the_contracts_limits(http: httpx.AsyncClient) -> None:
    document = (await http.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    [operation] = [
        item["post"] for path, item in document["paths"].items() if path.endswith("quizAttempts")
    ]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    attempt_props = body["properties"]
    assert attempt_props["answers"]["maxItems"] == 50
    assert attempt_props["requestId"]["maxLength"] == 128
    # What a client sends: the input forms (gateway/openapi.py names them).
    answer = schemas["QuizAnswer"]["properties"]
    assert answer["choiceIndexes"]["maxItems"] == 10
    course = schemas["CourseInput"]["properties"]
    assert course["title"]["maxLength"] == 120
    assert course["tags"]["maxItems"] == 10
    assert course["tags"]["items"]["maxLength"] == 30
    question = schemas["QuizQuestionInput"]["properties"]
    assert question["choices"]["maxItems"] == 10
    assert question["choices"]["items"]["maxLength"] == 500
    assert schemas["Article"]["properties"]["markdown"]["maxLength"] == 100_000
