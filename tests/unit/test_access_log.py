"""Access log lines: every failure and slow call, a sample of the fast successful ones."""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace

import pytest

from learnflow.context import CallContext
from learnflow.security.interceptor import AccessLog, ApiInterceptor

CALL = CallContext(method="/learnflow.v1.CatalogService/GetCourse", request_id="r")


def _lines(caplog: pytest.LogCaptureFixture, access: AccessLog, code: str, took_s: float) -> int:
    caplog.clear()
    owner = SimpleNamespace(access_log=access)
    with caplog.at_level(logging.INFO, logger="learnflow.rpc"):
        for _ in range(200):
            ApiInterceptor._log(owner, CALL, code, time.perf_counter() - took_s)  # type: ignore[arg-type]
    return sum(1 for r in caplog.records if r.name == "learnflow.rpc")


def test_fast_successes_are_sampled(caplog: pytest.LogCaptureFixture) -> None:
    assert _lines(caplog, AccessLog(sample=0.0), "OK", 0.0) == 0
    assert _lines(caplog, AccessLog(sample=1.0), "OK", 0.0) == 200
    assert 40 < _lines(caplog, AccessLog(sample=0.5), "OK", 0.0) < 160


def test_failures_and_slow_calls_are_always_logged(caplog: pytest.LogCaptureFixture) -> None:
    assert _lines(caplog, AccessLog(sample=0.0), "NOT_FOUND", 0.0) == 200
    assert _lines(caplog, AccessLog(sample=0.0, slow_ms=10), "OK", 0.05) == 200
