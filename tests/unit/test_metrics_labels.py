"""Metric label values stay bounded: ids and raw paths never become labels."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from starlette.routing import Route

from gateway.edge import route_template
from gateway.metrics import UNMATCHED, HttpMetrics
from learnflow import metrics
from learnflow.security.denials import RateLimited
from learnflow.security.rate_limits import RateLimiter
from learnflow.settings import Settings
from tests.metrics_support import ID_LIKE, id_like_labels, value


def test_id_like_matches_uuids_and_long_hex() -> None:
    assert ID_LIKE.search(str(uuid.uuid4()))
    assert ID_LIKE.search(uuid.uuid4().hex)
    assert not ID_LIKE.search("/v1/courses/{course_id}")
    assert not ID_LIKE.search("RESOURCE_EXHAUSTED")


def test_gateway_labels_are_templates_and_known_methods() -> None:
    http = HttpMetrics()
    raw = f"/v1/courses/{uuid.uuid4()}"
    http.finished("GET", "/v1/courses/{course_id}", 200, 0.01)
    http.finished("GET", None, 404, 0.01)  # raw path not routed: never its own label
    http.finished("BREW" + uuid.uuid4().hex, None, 405, 0.01)  # made-up methods: `other`
    text = http.text().decode()
    assert raw not in text
    assert not id_like_labels(text), id_like_labels(text)
    requests = "gateway_http_requests_total"
    assert value(text, requests, route="/v1/courses/{course_id}", status="200") == 1
    assert value(text, requests, route=UNMATCHED, status="404") == 1
    assert value(text, requests, method="other", status="405") == 1


def test_route_template_comes_from_the_route_never_the_path() -> None:
    path = f"/v1/courses/{uuid.uuid4()}"

    async def endpoint() -> None: ...

    assert route_template({"path": path, "state": {"route": "/v1/courses/{course_id}"}}) == (
        "/v1/courses/{course_id}"
    )
    assert route_template({"path": "/healthz", "route": Route("/healthz", endpoint)}) == (
        "/healthz"
    )
    assert route_template({"path": path, "state": {}}) is None


async def test_rate_limit_refusals_are_labelled_by_class_not_by_caller() -> None:
    settings = dataclasses.replace(Settings(), rate_limit_read="1/minute")
    limiter = RateLimiter(settings)
    user = f"user:{uuid.uuid4()}"
    before = value(metrics.metrics_text(), "learnflow_rate_limit_refusals_total", rate_class="read")
    await limiter.hit("read", user)
    with pytest.raises(RateLimited):
        await limiter.hit("read", user)
    quiz_user, lesson = str(uuid.uuid4()), str(uuid.uuid4())
    quiz = dataclasses.replace(settings, rate_limit_quiz_attempts="1/minute")
    quiz_limiter = RateLimiter(quiz)
    await quiz_limiter.hit_quiz_attempt(quiz_user, lesson)
    with pytest.raises(RateLimited):
        await quiz_limiter.hit_quiz_attempt(quiz_user, lesson)
    text = metrics.metrics_text()
    refusals = "learnflow_rate_limit_refusals_total"
    assert value(text, refusals, rate_class="read") == before + 1
    assert value(text, refusals, rate_class="quiz-attempt") >= 1
    assert not id_like_labels(text), id_like_labels(text)
    assert user not in text and lesson not in text
