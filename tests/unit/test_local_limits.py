"""The in-process sliding-window counter decides exactly as `limits`' own (same clock)."""

from __future__ import annotations

import asyncio
import random
import types

import pytest
from limits import parse
from limits.aio import strategies as limits_strategies
from limits.aio.storage import memory as limits_memory
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string

from learnflow.security.local_limits import LocalSlidingWindow


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.25

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("seed", range(6))
async def test_every_decision_and_window_stat_equals_limits(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    fake_time = types.SimpleNamespace(time=clock)
    monkeypatch.setattr(limits_memory, "time", fake_time)
    monkeypatch.setattr(limits_strategies, "time", fake_time)
    storage = storage_from_string("async+memory://")
    reference = SlidingWindowCounterRateLimiter(storage)
    local = LocalSlidingWindow(clock)
    items = [parse("10/second"), parse("7/5 seconds"), parse("3/minute")]
    rng = random.Random(seed)
    allowed = refused = 0
    for _ in range(600):
        clock.now += rng.choice([0.0, 0.0, 0.01, 0.05, 0.2, 0.5, 1.3, 7.0])
        item = rng.choice(items)
        key = ("class:read", rng.choice(["user:a", "user:b", "addr:c"]))
        cost = rng.choice([1, 1, 1, 2])
        action = rng.choice(["hit", "hit", "test", "stats"])
        if action == "hit":
            expected = await reference.hit(item, *key, cost=cost)
            assert local.hit(item, *key, cost=cost) == expected, (clock.now, item, key)
            allowed += expected
            refused += not expected
        elif action == "test":
            expected = await reference.test(item, *key, cost=cost)
            assert local.test(item, *key, cost=cost) == expected, (clock.now, item, key)
        else:
            want = await reference.get_window_stats(item, *key)
            got = local.get_window_stats(item, *key)
            assert got.remaining == want.remaining, (clock.now, item, key)
            assert got.reset_time == pytest.approx(want.reset_time, abs=1e-6)
    assert allowed > 50 and refused > 20  # both outcomes were exercised
    # The reference storage's expiry task, or the loop's end would report it pending.
    await asyncio.sleep(0)
    timer = getattr(storage, "timer", None)
    if timer is not None:
        timer.cancel()
        await asyncio.gather(timer, return_exceptions=True)


def test_idle_counters_are_swept(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    local = LocalSlidingWindow(clock)
    monkeypatch.setattr("learnflow.security.local_limits.SWEEP_EVERY", 10)
    item = parse("1000/second")
    for i in range(9):
        assert local.hit(item, f"addr:{i}")
    assert len(local) == 9
    clock.now += 2.5  # two windows later: no weight left
    assert local.hit(item, "addr:new")  # the 10th hit sweeps
    assert len(local) == 1
