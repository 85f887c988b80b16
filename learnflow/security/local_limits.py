"""The sliding-window counter of `limits`, in this process and without awaits.

Every RPC spends one hit, so this is on the path of every read. `limits`' asyncio memory
storage costs 15 us per hit (several awaits, an asyncio lock per key, an expiry task); its
synchronous one 10 us (string keys, thread locks, a timer thread): a quarter of the
interceptor's own time on a cached read. One process's counters need none of that: the event
loop runs one hit at a time. Used only for the in-memory storage; a shared storage (Redis)
keeps `limits`, whose algorithm this repeats exactly (`tests/unit/test_local_limits.py` holds
both to the same decisions).

The algorithm: a window of `expiry` seconds counts its hits; the previous window's count still
weighs in proportion to how much of it a sliding window ending now would overlap. A hit is
allowed when floor(weighted) + cost <= amount.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from limits import RateLimitItem

# Counters idle for two windows carry no weight any more; they are dropped every this many hits.
SWEEP_EVERY = 10_000


@dataclass
class _Counter:
    expiry: int
    window: int  # index of the current window: floor(now / expiry)
    previous: int
    current: int


@dataclass(frozen=True)
class WindowStats:
    reset_time: float  # when at least one more hit fits (seconds since the epoch)
    remaining: int


class Stats(Protocol):
    @property
    def reset_time(self) -> float: ...


class Strategy(Protocol):
    """What the rate limiter needs: `limits`' asyncio strategies, or the class below."""

    async def hit(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool: ...

    async def test(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool: ...

    async def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> Stats: ...


class LocalSlidingWindow:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._counters: dict[tuple[object, ...], _Counter] = {}
        self._hits = 0

    def __len__(self) -> int:
        return len(self._counters)

    def hit(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool:
        """Counts `cost` hits if they fit; False (nothing counted) otherwise."""
        now = self.clock()
        counter = self._counter(item, identifiers, now)
        if math.floor(self._weighted(counter, now)) + cost > item.amount:
            return False
        counter.current += cost
        self._hits += 1
        if self._hits % SWEEP_EVERY == 0:
            self._sweep(now)
        return True

    def test(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool:
        """Whether `cost` more hits would fit, counting nothing."""
        now = self.clock()
        counter = self._counter(item, identifiers, now)
        return math.floor(self._weighted(counter, now)) + cost <= item.amount

    def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats:
        """When one more hit fits again, and how many fit now (as `limits` answers)."""
        now = self.clock()
        counter = self._counter(item, identifiers, now)
        remaining = max(0, item.amount - math.floor(self._weighted(counter, now)))
        if not (counter.previous or counter.current):
            return WindowStats(now, remaining)
        expiry = counter.expiry
        previous_reset_in = current_reset_in = math.inf
        if counter.previous:
            # The previous window's weight falls by one hit's worth every expiry/previous s.
            previous_reset_in = self._overlap(counter, now) % (expiry / counter.previous)
        if counter.current:
            current_reset_in = (expiry - now % expiry) % expiry  # to this window's end
        return WindowStats(now + min(previous_reset_in, current_reset_in), remaining)

    def _counter(self, item: RateLimitItem, identifiers: tuple[str, ...], now: float) -> _Counter:
        expiry = item.get_expiry()
        key = (item.amount, expiry, *identifiers)
        window = int(now // expiry)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = _Counter(expiry, window, 0, 0)
        elif counter.window != window:
            counter.previous = counter.current if counter.window == window - 1 else 0
            counter.current = 0
            counter.window = window
        return counter

    @staticmethod
    def _overlap(counter: _Counter, now: float) -> float:
        """Seconds of the previous window a sliding window ending now still covers."""
        return counter.expiry - (now - counter.window * counter.expiry)

    def _weighted(self, counter: _Counter, now: float) -> float:
        return counter.previous * self._overlap(counter, now) / counter.expiry + counter.current

    def _sweep(self, now: float) -> None:
        stale = [
            key
            for key, counter in self._counters.items()
            if int(now // counter.expiry) - counter.window >= 2
        ]
        for key in stale:
            del self._counters[key]


class AsyncLocalSlidingWindow:
    """The same counters behind the awaitable interface of `limits`' asyncio strategies, so
    the rate limiter treats both storages alike (an await that never suspends)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.counters = LocalSlidingWindow(clock)

    async def hit(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool:
        return self.counters.hit(item, *identifiers, cost=cost)

    async def test(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool:
        return self.counters.test(item, *identifiers, cost=cost)

    async def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats:
        return self.counters.get_window_stats(item, *identifiers)
