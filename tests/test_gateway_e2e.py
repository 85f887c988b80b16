"""LearnFlow end to end through the HTTP gateway: uvicorn on a loopback port, real HTTP,
in front of the real gRPC server (PostgreSQL, MongoDB read models, interceptors)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from learnflow.server import Backend, build
from learnflow.settings import Settings
from tests.gateway_support import (
    PASSWORD,
    HttpUser,
    RunningServer,
    login_over_http,
    register_over_http,
    running_gateway,
)
from tests.support import Caller

BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
PRECONDITION_FAILURE = "type.googleapis.com/google.rpc.PreconditionFailure"
RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


@pytest.fixture(scope="module")
async def gateway(backend: Backend) -> AsyncIterator[RunningServer]:
    async with running_gateway(f"127.0.0.1:{backend.port}") as running:
        yield running


@pytest.fixture
async def http(gateway: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        yield client


@pytest.fixture
async def student(http: httpx.AsyncClient) -> HttpUser:
    return await register_over_http(http, name="Web Student")


def detail(body: dict[str, Any], type_url: str) -> dict[str, Any]:
    for item in body["details"]:
        if item["@type"] == type_url:
            found: dict[str, Any] = item
            return found
    raise AssertionError(f"no {type_url} in {body}")


async def published_course(
    http: httpx.AsyncClient, owner: Caller, *, capacity: int = 0, lessons: int = 2
) -> tuple[str, list[str]]:
    """An instructor's course with article lessons, published, all over HTTP."""
    auth = {"Authorization": f"Bearer {owner.access_token}"}
    created = await http.post(
        "/v1/courses",
        json={"course": {"title": f"Course {uuid.uuid4().hex[:6]}", "capacity": capacity}},
        headers=auth,
    )
    assert created.status_code == 200, created.text
    course_id: str = created.json()["course"]["id"]
    lesson_ids = []
    for i in range(lessons):
        lesson = await http.post(
            f"/v1/courses/{course_id}/lessons",
            json={"lesson": {"title": f"Lesson {i}", "article": {"markdown": f"# {i}"}}},
            headers=auth,
        )
        assert lesson.status_code == 200, lesson.text
        lesson_ids.append(lesson.json()["lesson"]["id"])
    published = await http.post(f"/v1/courses/{course_id}:publish", json={}, headers=auth)
    assert published.status_code == 200, published.text
    return course_id, lesson_ids


# -- identity ------------------------------------------------------------------------------


async def test_register_login_and_read_own_profile_with_consistency_token(
    http: httpx.AsyncClient,
) -> None:
    email = f"Mixed.Case-{uuid.uuid4().hex[:8]}@Example.com"
    registered = await http.post(
        "/v1/users:register",
        json={"email": email, "password": PASSWORD, "displayName": "Ada Lovelace"},
    )
    assert registered.status_code == 200, registered.text
    assert registered.headers["content-type"].startswith("application/json")
    body = registered.json()
    # No user in the answer (it would tell a new email from a taken one): only the token.
    assert list(body) == ["consistencyToken"]
    token = body["consistencyToken"]
    assert token

    session = await http.post("/v1/sessions", json={"email": email, "password": PASSWORD})
    assert session.status_code == 200, session.text
    tokens = session.json()
    assert tokens["accessToken"].count(".") == 2  # a JWT
    assert tokens["refreshToken"]
    assert tokens["expiresIn"] > 0

    # Right after the write: the read model may lag, the token makes the query wait for it.
    me = await http.get(
        "/v1/users/me",
        headers={"Authorization": f"Bearer {tokens['accessToken']}", "X-Consistency-Token": token},
    )
    assert me.status_code == 200, me.text
    user = me.json()["user"]
    # proto3 JSON: lowerCamel names, enums by name, timestamps as RFC 3339.
    assert user["email"] == email.lower()
    assert user["displayName"] == "Ada Lovelace"
    assert user["role"] == "ROLE_STUDENT"
    assert user["emailVerified"] is False
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", user["createTime"])


async def test_refresh_rotates_and_revoke_logs_out(
    http: httpx.AsyncClient, student: HttpUser
) -> None:
    refreshed = await http.post(
        "/v1/sessions:refresh", json={"refreshToken": student.refresh_token}
    )
    assert refreshed.status_code == 200, refreshed.text
    new_refresh = refreshed.json()["refreshToken"]
    assert new_refresh != student.refresh_token
    # The old one is spent.
    reused = await http.post("/v1/sessions:refresh", json={"refreshToken": student.refresh_token})
    assert reused.status_code == 401, reused.text
    assert reused.headers["www-authenticate"].startswith("Bearer")

    # Reuse revoked the family and ended its access tokens at once.
    ended = await http.get(
        "/v1/users/me", headers={"Authorization": f"Bearer {refreshed.json()['accessToken']}"}
    )
    assert ended.status_code == 401, ended.text

    access = (await login_over_http(http, student.email))["accessToken"]
    revoked = await http.post(
        "/v1/sessions:revoke",
        json={"allSessions": True},
        headers={"Authorization": f"Bearer {access}"},
    )
    assert revoked.status_code == 200, revoked.text
    after = await http.get("/v1/users/me", headers={"Authorization": f"Bearer {access}"})
    assert after.status_code == 401, after.text


async def test_jwks_is_public(http: httpx.AsyncClient) -> None:
    jwks = await http.get("/.well-known/jwks.json")
    assert jwks.status_code == 200, jwks.text
    keys = jwks.json()["keys"]
    assert keys
    assert all(k["kid"] and k["kty"] for k in keys)
    assert all("d" not in k for k in keys)  # never a private part


async def test_admin_sets_a_role_over_http(
    http: httpx.AsyncClient, admin: Caller, student: HttpUser
) -> None:
    changed = await http.post(
        f"/v1/users/{student.user_id}:setRole",
        json={"role": "ROLE_INSTRUCTOR"},
        headers={"Authorization": f"Bearer {admin.access_token}"},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["user"]["role"] == "ROLE_INSTRUCTOR"
    # A role change revokes the user's sessions: the old token no longer works.
    stale = await http.get("/v1/users/me", headers=student.headers())
    assert stale.status_code == 401, stale.text
    fresh = await login_over_http(http, student.email)
    me = await http.get(
        "/v1/users/me",
        headers={
            "Authorization": f"Bearer {fresh['accessToken']}",
            "X-Consistency-Token": changed.json()["consistencyToken"],
        },
    )
    assert me.status_code == 200, me.text
    assert me.json()["user"]["role"] == "ROLE_INSTRUCTOR"


# -- courses and enrollment ----------------------------------------------------------------


async def test_instructor_publishes_a_course_and_a_student_enrolls_and_learns(
    http: httpx.AsyncClient, instructor: Caller, student: HttpUser
) -> None:
    auth = {"Authorization": f"Bearer {instructor.access_token}"}
    created = await http.post(
        "/v1/courses",
        json={
            "course": {
                "title": "Distributed Systems, Gently",
                "summary": "Clocks, consensus and humility.",
                "tags": ["systems", "theory"],
                "level": "COURSE_LEVEL_INTERMEDIATE",
                "capacity": 10,
            },
            "requestId": str(uuid.uuid4()),
        },
        headers=auth,
    )
    assert created.status_code == 200, created.text
    course = created.json()["course"]
    assert course["state"] == "COURSE_STATE_DRAFT"
    assert course["tags"] == ["systems", "theory"]
    assert course["level"] == "COURSE_LEVEL_INTERMEDIATE"
    assert course["ownerId"] == instructor.user_id
    course_id = course["id"]

    renamed = await http.patch(
        f"/v1/courses/{course_id}",
        params={"updateMask": "title"},
        json={"title": "Distributed Systems, Kindly", "summary": "ignored: not in the mask"},
        headers=auth,
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["course"]["title"] == "Distributed Systems, Kindly"
    assert renamed.json()["course"]["summary"] == "Clocks, consensus and humility."

    lessons: dict[str, dict[str, Any]] = {
        "article": {"title": "Time", "article": {"markdown": "# There is no now"}},
        "video": {
            "title": "Raft",
            "video": {"url": "https://video.example/raft", "durationSeconds": 900},
        },
        "quiz": {
            "title": "Check",
            "quiz": {
                "passThresholdPercent": 50,
                "questions": [
                    {"id": "q1", "prompt": "CAP: pick?", "choices": ["2", "3"]},
                ],
            },
        },
        "codeExercise": {
            "title": "Lamport",
            "codeExercise": {"language": "python", "prompt": "tick()", "starterCode": "pass"},
        },
    }
    lesson_ids: dict[str, str] = {}
    for kind, lesson in lessons.items():
        if kind == "quiz":
            lesson["quiz"]["questions"][0]["correctChoiceIndexes"] = [0]
        added = await http.post(
            f"/v1/courses/{course_id}/lessons", json={"lesson": lesson}, headers=auth
        )
        assert added.status_code == 200, added.text
        got = added.json()["lesson"]
        assert kind in got, got  # the oneof member comes back under its own name
        assert got["courseId"] == course_id
        lesson_ids[kind] = got["id"]

    # Drafts are invisible to students: enrolling in one is NOT_FOUND, not a hint it exists.
    too_early = await http.post(
        f"/v1/courses/{course_id}/enrollments", json={}, headers=student.headers()
    )
    assert too_early.status_code == 404, too_early.text
    assert too_early.json()["code"] == 5

    published = await http.post(f"/v1/courses/{course_id}:publish", json={}, headers=auth)
    assert published.status_code == 200, published.text
    assert published.json()["course"]["state"] == "COURSE_STATE_PUBLISHED"

    enrolled = await http.post(
        f"/v1/courses/{course_id}/enrollments", json={}, headers=student.headers()
    )
    assert enrolled.status_code == 200, enrolled.text
    enrollment = enrolled.json()["enrollment"]
    assert enrollment["state"] == "ENROLLMENT_STATE_ACTIVE"
    assert enrollment["userId"] == student.user_id
    assert enrolled.json()["consistencyToken"]

    again = await http.post(
        f"/v1/courses/{course_id}/enrollments", json={}, headers=student.headers()
    )
    assert again.status_code == 409, again.text
    assert again.json()["code"] == 6  # ALREADY_EXISTS

    wrong = await http.post(
        f"/v1/courses/{course_id}/lessons/{lesson_ids['quiz']}/quizAttempts",
        json={"answers": [{"questionId": "q1", "choiceIndexes": [1]}]},
        headers=student.headers(),
    )
    assert wrong.status_code == 200, wrong.text
    assert wrong.json()["passed"] is False
    right = await http.post(
        f"/v1/courses/{course_id}/lessons/{lesson_ids['quiz']}/quizAttempts",
        json={"answers": [{"questionId": "q1", "choiceIndexes": [0]}]},
        headers=student.headers(),
    )
    assert right.status_code == 200, right.text
    assert right.json()["passed"] is True
    assert right.json()["bestScore"] == 100

    for kind in ("article", "video", "codeExercise"):
        done = await http.post(
            f"/v1/courses/{course_id}/lessons/{lesson_ids[kind]}:complete",
            json={},
            headers=student.headers(),
        )
        assert done.status_code == 200, done.text
    # The passed quiz and every other lesson done: the enrollment is complete.
    assert done.json()["enrollment"]["state"] == "ENROLLMENT_STATE_COMPLETED"

    # Withdrawing from a completed course: FAILED_PRECONDITION is 400 (grpc-gateway's table),
    # with the PreconditionFailure detail in proto3 JSON.
    withdrawn = await http.post(
        f"/v1/courses/{course_id}/enrollments/me:withdraw", json={}, headers=student.headers()
    )
    assert withdrawn.status_code == 400, withdrawn.text
    assert withdrawn.json()["code"] == 9
    violation = detail(withdrawn.json(), PRECONDITION_FAILURE)["violations"][0]
    assert violation["type"] == "ENROLLMENT_STATE"


async def test_delete_lesson_and_empty_response_body(
    http: httpx.AsyncClient, instructor: Caller
) -> None:
    course_id, (first, second) = await published_course(http, instructor)
    auth = {"Authorization": f"Bearer {instructor.access_token}"}
    deleted = await http.delete(f"/v1/courses/{course_id}/lessons/{first}", headers=auth)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["consistencyToken"]
    gone = await http.delete(f"/v1/courses/{course_id}/lessons/{first}", headers=auth)
    assert gone.status_code == 404, gone.text
    assert gone.json()["code"] == 5
    assert second


async def test_capacity_is_a_precondition_over_http(
    http: httpx.AsyncClient, instructor: Caller
) -> None:
    course_id, _ = await published_course(http, instructor, capacity=1, lessons=1)
    first = await register_over_http(http)
    second = await register_over_http(http)
    ok = await http.post(f"/v1/courses/{course_id}/enrollments", json={}, headers=first.headers())
    assert ok.status_code == 200, ok.text
    full = await http.post(
        f"/v1/courses/{course_id}/enrollments", json={}, headers=second.headers()
    )
    assert full.status_code == 400, full.text
    assert detail(full.json(), PRECONDITION_FAILURE)["violations"][0]["type"] == "CAPACITY"


async def test_instructor_roster_authored_courses_and_lifecycle_over_http(
    http: httpx.AsyncClient, instructor: Caller, student: HttpUser
) -> None:
    course_id, _ = await published_course(http, instructor, lessons=1)
    auth = {"Authorization": f"Bearer {instructor.access_token}"}
    enrolled = await http.post(
        f"/v1/courses/{course_id}/enrollments", json={}, headers=student.headers()
    )
    assert enrolled.status_code == 200, enrolled.text
    token = {"X-Consistency-Token": enrolled.json()["consistencyToken"]}
    roster = await http.get(
        f"/v1/courses/{course_id}/enrollments",
        params={"orderBy": "last_activity_time desc", "pageSize": 10},
        headers=auth | token,
    )
    assert roster.status_code == 200, roster.text
    [entry] = roster.json()["enrollments"]
    assert (entry["userId"], entry["displayName"]) == (student.user_id, "Web Student")
    assert entry["state"] == "ENROLLMENT_STATE_ACTIVE"
    refused = await http.get(f"/v1/courses/{course_id}/enrollments", headers=student.headers())
    assert refused.status_code == 403, refused.text

    mine = await http.get("/v1/users/me/authoredCourses", headers=auth | token)
    assert mine.status_code == 200, mine.text
    assert [c["id"] for c in mine.json()["courses"]] == [course_id]

    busy = await http.post(f"/v1/courses/{course_id}:unpublish", json={}, headers=auth)
    assert busy.status_code == 400, busy.text
    assert detail(busy.json(), PRECONDITION_FAILURE)["violations"][0]["type"] == "ENROLLMENTS"
    left = await http.post(
        f"/v1/courses/{course_id}/enrollments/me:withdraw", json={}, headers=student.headers()
    )
    assert left.status_code == 200, left.text
    draft = await http.post(f"/v1/courses/{course_id}:unpublish", json={}, headers=auth)
    assert draft.status_code == 200, draft.text
    assert draft.json()["course"]["state"] == "COURSE_STATE_DRAFT"
    kept = await http.delete(f"/v1/courses/{course_id}", headers=auth)
    assert kept.status_code == 400, kept.text  # it had a learner
    archived = await http.post(f"/v1/courses/{course_id}:archive", json={}, headers=auth)
    assert archived.status_code == 200, archived.text
    restored = await http.post(f"/v1/courses/{course_id}:restore", json={}, headers=auth)
    assert restored.json()["course"]["state"] == "COURSE_STATE_DRAFT", restored.text

    scratch = await http.post("/v1/courses", json={"course": {"title": "Scratch"}}, headers=auth)
    scratch_id = scratch.json()["course"]["id"]
    gone = await http.delete(f"/v1/courses/{scratch_id}", headers=auth)
    assert gone.status_code == 200, gone.text
    after = {"X-Consistency-Token": gone.json()["consistencyToken"]}
    missing = await http.get(f"/v1/courses/{scratch_id}", headers=auth | after)
    assert missing.status_code == 404, missing.text


async def test_catalog_search_tags_order_and_total_over_http(
    http: httpx.AsyncClient, instructor: Caller
) -> None:
    auth = {"Authorization": f"Bearer {instructor.access_token}"}
    word, one, two = (f"w{uuid.uuid4().hex[:8]}" for _ in range(3))
    ids = []
    for title, tags in (
        (f"Zeta {word}", [one, two]),
        (f"Alpha {word}", [one, two]),
        ("Beta only", [one]),
    ):
        created = await http.post(
            "/v1/courses", json={"course": {"title": title, "tags": tags}}, headers=auth
        )
        course_id = created.json()["course"]["id"]
        await http.post(
            f"/v1/courses/{course_id}/lessons",
            json={"lesson": {"title": "L", "article": {"markdown": "# L"}}},
            headers=auth,
        )
        published = await http.post(f"/v1/courses/{course_id}:publish", json={}, headers=auth)
        ids.append(course_id)
    token = {"X-Consistency-Token": published.json()["consistencyToken"]}
    found = await http.get(
        "/v1/courses",
        params=[("q", word.upper()), ("tags", one), ("tags", two), ("orderBy", "title")],
        headers=token,
    )
    assert found.status_code == 200, found.text
    body = found.json()
    assert [c["id"] for c in body["courses"]] == [ids[1], ids[0]]
    assert body["totalSize"] == 2


# -- error mapping -------------------------------------------------------------------------


async def test_invalid_registration_is_400_with_field_violations(
    http: httpx.AsyncClient,
) -> None:
    bad = await http.post(
        "/v1/users:register",
        json={"email": "not-an-email", "password": "short", "displayName": ""},
    )
    assert bad.status_code == 400, bad.text
    body = bad.json()
    assert body["code"] == 3  # INVALID_ARGUMENT
    fields = {v["field"] for v in detail(body, BAD_REQUEST)["fieldViolations"]}
    assert {"email", "password"} <= fields, body


async def test_unknown_json_field_and_query_parameter_are_named(
    http: httpx.AsyncClient, student: HttpUser
) -> None:
    unknown = await http.post(
        "/v1/sessions", json={"email": student.email, "password": PASSWORD, "remember": True}
    )
    assert unknown.status_code == 400, unknown.text
    assert "remember" in unknown.json()["message"]
    query = await http.get("/v1/users/me", params={"verbose": "1"}, headers=student.headers())
    assert query.status_code == 400, query.text
    assert "verbose" in query.json()["message"]
    wrong_type = await http.post(
        "/v1/sessions", content=b"email=x", headers={"Content-Type": "text/plain"}
    )
    assert wrong_type.status_code == 415, wrong_type.text


async def test_unauthenticated_is_401_with_www_authenticate(http: httpx.AsyncClient) -> None:
    missing = await http.get("/v1/users/me")
    assert missing.status_code == 401, missing.text
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert missing.json()["code"] == 16
    forged = await http.get("/v1/users/me", headers={"Authorization": "Bearer not.a.jwt"})
    assert forged.status_code == 401, forged.text
    assert forged.headers["www-authenticate"].startswith("Bearer")
    bad_login = await http.post(
        "/v1/sessions", json={"email": "nobody@example.com", "password": "wrong-password"}
    )
    assert bad_login.status_code == 401, bad_login.text


async def test_wrong_role_is_403(
    http: httpx.AsyncClient, student: HttpUser, instructor: Caller
) -> None:
    denied = await http.post(
        "/v1/courses", json={"course": {"title": "Mine now"}}, headers=student.headers()
    )
    assert denied.status_code == 403, denied.text
    assert denied.json()["code"] == 7
    # Authenticated and enrolled-capable, but not the course's owner.
    course_id, _ = await published_course(http, instructor, lessons=1)
    not_owner = await http.post(
        f"/v1/courses/{course_id}:archive", json={}, headers=student.headers()
    )
    assert not_owner.status_code == 403, not_owner.text
    admin_only = await http.post(
        f"/v1/users/{student.user_id}:setRole",
        json={"role": "ROLE_ADMIN"},
        headers=student.headers(),
    )
    assert admin_only.status_code == 403, admin_only.text


async def test_unknown_course_is_404_and_unknown_route_is_404(
    http: httpx.AsyncClient, instructor: Caller
) -> None:
    missing = await http.post(
        f"/v1/courses/{uuid.uuid4()}:publish",
        json={},
        headers={"Authorization": f"Bearer {instructor.access_token}"},
    )
    assert missing.status_code == 404, missing.text
    assert missing.json()["code"] == 5
    no_route = await http.get("/v1/nothing/here")
    assert no_route.status_code == 404
    wrong_method = await http.delete("/v1/sessions")
    assert wrong_method.status_code == 405
    assert "POST" in wrong_method.headers["allow"]


async def test_a_duplicate_registration_answers_like_a_new_one(
    http: httpx.AsyncClient, student: HttpUser
) -> None:
    dup = await http.post(
        "/v1/users:register",
        json={"email": student.email.upper(), "password": PASSWORD, "displayName": "Twin"},
    )
    # Not 409: that would tell anyone which emails have accounts. The owner gets a mail.
    assert dup.status_code == 200, dup.text
    assert list(dup.json()) == ["consistencyToken"]
    twin = await http.post("/v1/sessions", json={"email": student.email, "password": PASSWORD})
    assert twin.status_code == 200  # still the first account and its password
    me = await http.get(
        "/v1/users/me", headers={"Authorization": f"Bearer {twin.json()['accessToken']}"}
    )
    assert me.json()["user"]["id"] == student.user_id


async def test_request_id_is_echoed_or_generated(
    http: httpx.AsyncClient, student: HttpUser
) -> None:
    mine = f"req-{uuid.uuid4().hex}"
    # The consistency token: without it the profile may not be projected yet (404).
    headers = student.headers(student.consistency_token)
    echoed = await http.get("/v1/users/me", headers={**headers, "X-Request-Id": mine})
    assert echoed.status_code == 200
    assert echoed.headers["x-request-id"] == mine
    # Also on errors, where support needs it most.
    failed = await http.get("/v1/users/me", headers={"X-Request-Id": mine + "-2"})
    assert failed.status_code == 401
    assert failed.headers["x-request-id"] == mine + "-2"
    generated = await http.get("/v1/users/me", headers=headers)
    assert re.fullmatch(r"[0-9a-f-]{36}", generated.headers["x-request-id"])


async def test_health_readiness_and_openapi(http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    ready = await http.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "SERVING"}
    document = (await http.get("/openapi.json")).json()
    assert "/v1/users:register" in document["paths"]
    register = document["paths"]["/v1/users:register"]["post"]
    assert register["x-learnflow.v1.access"]["audience"] == "AUDIENCE_PUBLIC"
    me = document["paths"]["/v1/users/me"]["get"]
    assert me["x-learnflow.v1.access"]["audience"] == "AUDIENCE_AUTHENTICATED"


# -- rate limits ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def strict_gateway(settings: Settings) -> AsyncIterator[RunningServer]:
    """A second server on the same databases with a tiny per-account login budget."""
    strict = dataclasses.replace(settings, rate_limit_login_per_account="2/minute")
    server = await build(strict, run_projector=False)
    try:
        async with running_gateway(f"127.0.0.1:{server.port}") as running:
            yield running
    finally:
        await server.close(grace_s=1)


async def test_rate_limited_login_is_429_with_retry_after(strict_gateway: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=strict_gateway.url, timeout=30) as http:
        user = await register_over_http(http)
        statuses = []
        for _ in range(4):
            answer = await http.post(
                "/v1/sessions", json={"email": user.email, "password": "wrong-password"}
            )
            statuses.append(answer.status_code)
        assert statuses[-1] == 429, statuses
        assert answer.json()["code"] == 8  # RESOURCE_EXHAUSTED
        retry_after = int(answer.headers["retry-after"])
        assert 1 <= retry_after <= 60
        delay = detail(answer.json(), RETRY_INFO)["retryDelay"]
        assert delay.endswith("s")


# -- read side: catalog, lessons, progress, watch --------------------------------------------


async def test_catalog_lessons_and_progress_read_your_writes(
    http: httpx.AsyncClient, instructor: Caller, student: HttpUser
) -> None:
    auth = {"Authorization": f"Bearer {instructor.access_token}"}
    tag = f"tag{uuid.uuid4().hex[:10]}"
    created = await http.post(
        "/v1/courses",
        json={"course": {"title": "Catalogued", "tags": [tag], "level": "COURSE_LEVEL_ADVANCED"}},
        headers=auth,
    )
    assert created.status_code == 200, created.text
    course_id = created.json()["course"]["id"]
    article = await http.post(
        f"/v1/courses/{course_id}/lessons",
        json={"lesson": {"title": "Read me", "article": {"markdown": "text"}}},
        headers=auth,
    )
    quiz = await http.post(
        f"/v1/courses/{course_id}/lessons",
        json={
            "lesson": {
                "title": "Answer me",
                "quiz": {
                    "passThresholdPercent": 100,
                    "questions": [
                        {
                            "id": "q",
                            "prompt": "1+1?",
                            "choices": ["2", "3"],
                            "correctChoiceIndexes": [0],
                        }
                    ],
                },
            }
        },
        headers=auth,
    )
    assert article.status_code == quiz.status_code == 200, (article.text, quiz.text)
    article_id, quiz_id = article.json()["lesson"]["id"], quiz.json()["lesson"]["id"]
    published = await http.post(f"/v1/courses/{course_id}:publish", json={}, headers=auth)
    assert published.status_code == 200, published.text
    token = published.json()["consistencyToken"]

    # Public catalog, filtered by tag, caught up with the publish thanks to the token.
    listed = await http.get(
        "/v1/courses", params={"tag": tag, "pageSize": 5}, headers={"X-Consistency-Token": token}
    )
    assert listed.status_code == 200, listed.text
    [entry] = listed.json()["courses"]
    assert entry["id"] == course_id
    assert entry["state"] == "COURSE_STATE_PUBLISHED"
    assert entry["lessonCount"] == 2
    by_level = await http.get(
        "/v1/courses",
        params={"tag": tag, "level": "COURSE_LEVEL_BEGINNER"},
        headers={"X-Consistency-Token": token},
    )
    assert by_level.status_code == 200, by_level.text
    assert by_level.json().get("courses", []) == []

    outline = await http.get(f"/v1/courses/{course_id}", headers={"X-Consistency-Token": token})
    assert outline.status_code == 200, outline.text
    assert [lesson["id"] for lesson in outline.json()["lessons"]] == [article_id, quiz_id]

    enrolled = await http.post(
        f"/v1/courses/{course_id}/enrollments", json={}, headers=student.headers()
    )
    assert enrolled.status_code == 200, enrolled.text
    after_enroll = enrolled.json()["consistencyToken"]

    # Quiz answers never leave the server to students; staff see them.
    as_student = await http.get(
        f"/v1/courses/{course_id}/lessons/{quiz_id}", headers=student.headers(after_enroll)
    )
    assert as_student.status_code == 200, as_student.text
    [question] = as_student.json()["lesson"]["quiz"]["questions"]
    assert question["prompt"] == "1+1?"
    assert not question.get("correctChoiceIndexes")
    as_staff = await http.get(
        f"/v1/courses/{course_id}/lessons/{quiz_id}", headers={**auth, "X-Consistency-Token": token}
    )
    assert as_staff.json()["lesson"]["quiz"]["questions"][0]["correctChoiceIndexes"] == [0]

    done = await http.post(
        f"/v1/courses/{course_id}/lessons/{article_id}:complete", json={}, headers=student.headers()
    )
    assert done.status_code == 200, done.text
    progress = await http.get(
        f"/v1/users/me/courses/{course_id}/progress",
        headers=student.headers(done.json()["consistencyToken"]),
    )
    assert progress.status_code == 200, progress.text
    body = progress.json()["progress"]
    assert body["completedLessonIds"] == [article_id]
    assert body["percentComplete"] == 50
    assert body["state"] == "ENROLLMENT_STATE_ACTIVE"

    dashboard = await http.get(
        "/v1/users/me/enrollments", headers=student.headers(done.json()["consistencyToken"])
    )
    assert dashboard.status_code == 200, dashboard.text
    assert course_id in [e["courseId"] for e in dashboard.json()["enrollments"]]

    # Someone else's progress does not exist for this student.
    stranger = await register_over_http(http)
    none = await http.get(f"/v1/users/me/courses/{course_id}/progress", headers=stranger.headers())
    assert none.status_code == 404, none.text


async def test_watch_progress_as_server_sent_events_and_ndjson(
    http: httpx.AsyncClient, instructor: Caller, student: HttpUser
) -> None:
    course_id, (first, second) = await published_course(http, instructor, lessons=2)
    enrolled = await http.post(
        f"/v1/courses/{course_id}/enrollments", json={}, headers=student.headers()
    )
    assert enrolled.status_code == 200, enrolled.text
    token = enrolled.json()["consistencyToken"]
    path = f"/v1/users/me/courses/{course_id}/progress:watch"

    async def read_events(lines: AsyncIterator[str], count: int) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        async for line in lines:
            if line.startswith("data: "):
                events.append(json.loads(line[len("data: ") :]))
                if len(events) == count:
                    break
            else:  # no `event: error`
                assert line == "" or line.startswith((":", "id: ")), line
        return events

    headers = {**student.headers(token), "Accept": "text/event-stream"}
    async with asyncio.timeout(30), http.stream("GET", path, headers=headers) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.aiter_lines()
        [initial] = await read_events(lines, 1)
        assert initial["progress"]["percentComplete"] == 0
        done = await http.post(
            f"/v1/courses/{course_id}/lessons/{first}:complete", json={}, headers=student.headers()
        )
        assert done.status_code == 200, done.text
        [update] = await read_events(lines, 1)
        assert update["progress"]["completedLessonIds"] == [first]
        assert update["progress"]["percentComplete"] == 50

    # NDJSON without the SSE Accept header: one JSON document per line.
    async with asyncio.timeout(30), http.stream("GET", path, headers=student.headers()) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("application/x-ndjson")
        async for line in stream.aiter_lines():
            assert json.loads(line)["progress"]["completedLessonIds"] == [first]
            break
    assert second

    # Not enrolled: the stream fails before it starts, with a real HTTP status.
    stranger = await register_over_http(http)
    refused = await http.get(path, headers={**stranger.headers(), "Accept": "text/event-stream"})
    assert refused.status_code == 404, refused.text
    assert refused.json()["code"] == 5


# Found by tests/test_gateway_fuzz.py (LEARNFLOW_FUZZ_SEED=300731690): PostgreSQL refuses NUL
# bytes, so they are refused with the field's name before any handler runs.
async def test_nul_byte_in_login_email_is_a_client_error(http: httpx.AsyncClient) -> None:
    answer = await http.post(
        "/v1/sessions", json={"email": "someone\u0000@example.com", "password": PASSWORD}
    )
    assert answer.status_code == 400, answer.text
    fields = {v["field"] for v in detail(answer.json(), BAD_REQUEST)["fieldViolations"]}
    assert fields == {"email"}


# -- hardening -----------------------------------------------------------------------------


@pytest.mark.parametrize("question_id", ["a.b", "$where", "x y", "é", "a" * 65])
async def test_a_quiz_question_id_that_could_become_a_key_is_refused_and_reads_go_on(
    http: httpx.AsyncClient, instructor: Caller, question_id: str
) -> None:
    """Issue 12's critical finding: `a.b` was stored as a document key, the store refused it
    and the projector stopped for good. Now the command refuses it, and the next write reads
    back with its consistency token at once."""
    auth = {"Authorization": f"Bearer {instructor.access_token}"}
    created = await http.post("/v1/courses", json={"course": {"title": "Quiz ids"}}, headers=auth)
    course_id = created.json()["course"]["id"]
    bad = await http.post(
        f"/v1/courses/{course_id}/lessons",
        json={
            "lesson": {
                "title": "q",
                "quiz": {
                    "questions": [
                        {
                            "id": question_id,
                            "prompt": "p",
                            "choices": ["x", "y"],
                            "correctChoiceIndexes": [0],
                        }
                    ]
                },
            }
        },
        headers=auth,
    )
    assert bad.status_code == 400, bad.text
    violations = detail(bad.json(), BAD_REQUEST)["fieldViolations"]
    assert [v["field"] for v in violations] == ["lesson.quiz.questions[0].id"]
    renamed = await http.patch(
        f"/v1/courses/{course_id}?updateMask=title",
        json={"title": "Quiz ids, renamed"},
        headers=auth,
    )
    assert renamed.status_code == 200, renamed.text
    token = renamed.json()["consistencyToken"]
    read = await http.get(
        f"/v1/courses/{course_id}", headers={**auth, "X-Consistency-Token": token}
    )
    assert read.status_code == 200, read.text
    assert read.json()["course"]["title"] == "Quiz ids, renamed"


async def test_an_event_source_opens_a_stream_with_a_ticket_and_resumes_its_ids(
    http: httpx.AsyncClient, instructor: Caller, student: HttpUser
) -> None:
    """EventSource cannot send Authorization: a single-use ticket stands for it; every SSE
    event has an id, and Last-Event-ID continues the numbering."""
    course_id, _ = await published_course(http, instructor, lessons=1)
    enrolled = await http.post(
        f"/v1/courses/{course_id}/enrollments", json={}, headers=student.headers()
    )
    token = enrolled.json()["consistencyToken"]
    path = f"/v1/users/me/courses/{course_id}/progress:watch"
    # No ticket, no token: refused.
    anonymous = await http.get(path, headers={"Accept": "text/event-stream"})
    assert anonymous.status_code == 401
    assert (await http.post("/-/stream-tickets")).status_code == 401

    async def first_event(ticket: str, last_event_id: str = "") -> tuple[str, dict[str, Any]]:
        headers = {"Accept": "text/event-stream", "X-Consistency-Token": token}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        async with (
            asyncio.timeout(30),
            http.stream("GET", f"{path}?ticket={ticket}", headers=headers) as stream,
        ):
            assert stream.status_code == 200
            event_id = ""
            async for line in stream.aiter_lines():
                if line.startswith("id: "):
                    event_id = line[len("id: ") :]
                elif line.startswith("data: "):
                    return event_id, json.loads(line[len("data: ") :])
        raise AssertionError("no event")

    issued = await http.post("/-/stream-tickets", headers=student.headers())
    assert issued.status_code == 200, issued.text
    ticket = issued.json()["ticket"]
    event_id, event = await first_event(ticket)
    assert event_id == "1"
    assert event["progress"]["courseId"] == course_id
    # Single use: the same ticket again is refused.
    reused = await http.get(f"{path}?ticket={ticket}", headers={"Accept": "text/event-stream"})
    assert reused.status_code == 401
    assert "ticket" in reused.json()["message"]
    # A reconnection carries Last-Event-ID: the ids go on from it.
    again = (await http.post("/-/stream-tickets", headers=student.headers())).json()["ticket"]
    event_id, _ = await first_event(again, last_event_id="7")
    assert event_id == "8"


async def test_conditional_gets_answer_304_until_the_resource_changes(
    http: httpx.AsyncClient, instructor: Caller
) -> None:
    course_id, _ = await published_course(http, instructor, lessons=1)
    auth = {"Authorization": f"Bearer {instructor.access_token}"}
    async with asyncio.timeout(10):  # until the projector has the published course
        while (first := await http.get(f"/v1/courses/{course_id}")).status_code == 404:  # noqa: ASYNC110 - polls an HTTP resource
            await asyncio.sleep(0.05)
    assert first.status_code == 200
    etag = first.headers["etag"]
    # Anonymous, no token: shared caches may keep it; the variants stay apart by Vary.
    assert first.headers["cache-control"] == "public, max-age=5"
    varies = {v.strip().lower() for v in first.headers["vary"].split(",")}
    assert {"authorization", "x-consistency-token"} <= varies
    signed_in = await http.get(f"/v1/courses/{course_id}", headers=auth)
    assert signed_in.headers["cache-control"] == "private, no-cache"
    assert signed_in.headers["etag"] == etag  # the same representation
    again = await http.get(f"/v1/courses/{course_id}", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    renamed = await http.patch(
        f"/v1/courses/{course_id}?updateMask=title", json={"title": "Renamed"}, headers=auth
    )
    token = renamed.json()["consistencyToken"]
    changed = await http.get(
        f"/v1/courses/{course_id}",
        headers={"If-None-Match": etag, "X-Consistency-Token": token},
    )
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    assert changed.headers["cache-control"] == "private, no-cache"  # read with a token
    assert changed.json()["course"]["title"] == "Renamed"


async def test_idempotency_key_is_the_request_id(
    http: httpx.AsyncClient, instructor: Caller
) -> None:
    auth = {"Authorization": f"Bearer {instructor.access_token}"}
    key = f"create-{uuid.uuid4().hex}"
    body = {"course": {"title": "Created once"}}
    first = await http.post("/v1/courses", json=body, headers={**auth, "Idempotency-Key": key})
    again = await http.post("/v1/courses", json=body, headers={**auth, "Idempotency-Key": key})
    assert first.status_code == again.status_code == 200, again.text
    assert first.json()["course"]["id"] == again.json()["course"]["id"]
    # The same key for another request, or a key that differs from the body's requestId.
    other = await http.post(
        "/v1/courses", json={"course": {"title": "Other"}}, headers={**auth, "Idempotency-Key": key}
    )
    assert other.status_code == 400
    both = await http.post(
        "/v1/courses",
        json={**body, "requestId": "something-else"},
        headers={**auth, "Idempotency-Key": key},
    )
    assert both.status_code == 400
    assert "differ" in both.json()["message"]
    # A method without an idempotency field says so rather than ignoring the header.
    login = await http.post(
        "/v1/sessions",
        json={"email": "nobody@example.com", "password": "whatever-it-is"},
        headers={"Idempotency-Key": key},
    )
    assert login.status_code == 400
    assert "Idempotency-Key" in login.json()["message"]
    junk = await http.post("/v1/courses", json=body, headers={**auth, "Idempotency-Key": "a b"})
    assert junk.status_code == 400


async def test_field_violations_are_named_as_the_body_the_client_sent(
    http: httpx.AsyncClient, student: HttpUser
) -> None:
    # PATCH /v1/users/me takes the user itself as its body: the violation names `avatarUrl`,
    # not the server's `user.avatar_url`.
    bad = await http.patch(
        "/v1/users/me",
        params={"updateMask": "avatarUrl,displayName"},
        json={"avatarUrl": "http://insecure.example/a.png", "displayName": ""},
        headers=student.headers(),
    )
    assert bad.status_code == 400, bad.text
    fields = {v["field"] for v in detail(bad.json(), BAD_REQUEST)["fieldViolations"]}
    assert fields == {"avatarUrl", "displayName"}, bad.text
