"""Cost of one rate-limit hit on the in-memory storage, per `limits` strategy (issue 13).

    .venv/bin/python bench/rate_limiter.py [--hits 20000] [--keys 50] [--rounds 5]

Every RPC spends one hit, so this is on the path of every read. The exact moving window keeps a
timestamp per hit and expires them with a thread hop per key; the sliding-window counter that
`learnflow.security.rate_limits` uses keeps two counters per key. Medians over the rounds, with
the ratio to the fixed window (the cheapest strategy), measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from limits import parse
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.storage import storage_from_string

from learnflow.security.local_limits import AsyncLocalSlidingWindow

STRATEGIES: tuple[type[RateLimiter], ...] = (
    FixedWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
    MovingWindowRateLimiter,
)


async def microseconds_per_hit(strategy: type[RateLimiter], hits: int, keys: int) -> float:
    limiter = strategy(storage_from_string("async+memory://"))
    item = parse("1000000/minute")
    started = time.perf_counter()
    for i in range(hits):
        await limiter.hit(item, "class:read", f"addr:{i % keys}")
        if i % 50 == 0:
            await asyncio.sleep(0)  # let the storage's expiry task run, as a server would
    return (time.perf_counter() - started) / hits * 1e6


async def local_microseconds_per_hit(hits: int, keys: int) -> float:
    """The same algorithm in process (`learnflow.security.local_limits`), awaited as the
    rate limiter awaits it."""
    limiter = AsyncLocalSlidingWindow()
    item = parse("1000000/minute")
    started = time.perf_counter()
    for i in range(hits):
        await limiter.hit(item, "class:read", f"addr:{i % keys}")
    return (time.perf_counter() - started) / hits * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hits", type=int, default=20_000)
    parser.add_argument("--keys", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    medians = {}
    for strategy in STRATEGIES:
        runs = [
            await microseconds_per_hit(strategy, args.hits, args.keys) for _ in range(args.rounds)
        ]
        medians[strategy.__name__] = statistics.median(runs)
    local = [await local_microseconds_per_hit(args.hits, args.keys) for _ in range(args.rounds)]
    medians["LocalSlidingWindow (learnflow, in-memory storage)"] = statistics.median(local)
    base = medians[FixedWindowRateLimiter.__name__]
    print(f"{args.hits} hits over {args.keys} keys, median of {args.rounds} rounds")
    print("| strategy | us per hit | vs fixed window |\n|---|---:|---:|")
    for name, value in medians.items():
        print(f"| {name} | {value:.1f} | {value / base:.1f}x |")


if __name__ == "__main__":
    asyncio.run(main())
