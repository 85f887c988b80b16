"""The query cache's rules on the store's own in-memory notification path (no database: the
store's client never connects; `notify_changed` is what the projector calls after a batch)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from pymongo import AsyncMongoClient

from learnflow.positions import EventKey
from learnflow.projections.query_cache import QueryCache
from learnflow.projections.store import Document, ReadStore

DB = "lf_g1"


@pytest.fixture
async def store() -> AsyncIterator[ReadStore]:
    client: AsyncMongoClient[Document] = AsyncMongoClient("mongodb://127.0.0.1:9/", connect=False)
    yield ReadStore(client, "lf")
    await client.close()


class Source:
    """A query result that changes on demand, counting the fetches that read it; a fetch can
    be held open (`hold`) to let something happen while it runs."""

    def __init__(self, value: str = "v1") -> None:
        self.value = value
        self.fetches = 0
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()

    def hold(self) -> None:
        self.gate = asyncio.Event()
        self.started = asyncio.Event()

    async def __call__(self) -> str:
        self.fetches += 1
        seen = self.value
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        return seen


async def read(
    cache: QueryCache,
    source: Callable[[], Awaitable[str]],
    key: str = "page1",
    at_least: EventKey | None = None,
) -> str:
    return await cache.get(DB, "courses", key, source, at_least)


async def test_a_result_is_served_until_the_local_projector_writes_its_collection(
    store: ReadStore,
) -> None:
    cache = QueryCache(store, ttl_s=60)
    source = Source()
    assert await read(cache, source) == "v1"
    source.value = "v2"
    assert await read(cache, source) == "v1"  # cached
    assert (cache.hits, cache.misses, source.fetches) == (1, 1, 1)

    # Another collection, or the same collection of another database: still cached.
    store.notify_changed(DB, EventKey(5, 1), [("lessons", "x")])
    store.notify_changed("lf_g2", EventKey(5, 2), [("courses", "y")])
    assert await read(cache, source) == "v1"
    # Any document of the collection: every entry of it goes, whatever document it was.
    other = Source("other")
    await read(cache, other, key="page2")
    store.notify_changed(DB, EventKey(6, 1), [("courses", "some-unlisted-course")])
    assert len(cache) == 0
    assert await read(cache, source) == "v2"
    assert source.fetches == 2


async def test_a_fetch_that_overlaps_an_invalidation_is_returned_but_not_stored(
    store: ReadStore,
) -> None:
    cache = QueryCache(store, ttl_s=60)
    source = Source()
    source.hold()
    pending = asyncio.create_task(read(cache, source))
    await source.started.wait()
    # The projector rewrites a course while the query runs: what it read may predate that.
    store.notify_changed(DB, EventKey(7, 1), [("courses", "c1")])
    source.value = "v2"
    assert source.gate is not None
    source.gate.set()
    assert await pending == "v1"  # the caller gets what it read (it overlapped the write)
    assert len(cache) == 0
    source.gate = None
    assert await read(cache, source) == "v2"
    assert source.fetches == 2

    # A write to another collection during the fetch does not keep it out.
    source.hold()
    store.notify_changed(DB, EventKey(7, 2), [("courses", "c2")])  # drops the v2 entry
    pending = asyncio.create_task(read(cache, source))
    await source.started.wait()
    store.notify_changed(DB, EventKey(7, 3), [("progress", "p1")])
    assert source.gate is not None
    source.gate.set()
    await pending
    assert len(cache) == 1


async def test_a_token_is_never_answered_by_an_entry_older_than_it(store: ReadStore) -> None:
    cache = QueryCache(store, ttl_s=60)
    source = Source()
    await read(cache, source)  # no local checkpoint yet: labelled ZERO
    token = EventKey(10, 3)
    source.value = "v2"
    assert await read(cache, source, at_least=token) == "v2"  # ZERO < token: fetched
    # Now the local projector has saved a checkpoint at the token (without touching courses):
    # a fetch from now on is fresh to it, and serves that token and older ones.
    store.notify_changed(DB, token, [("progress", "p")])
    source.value = "v3"
    assert await read(cache, source, key="page2", at_least=token) == "v3"
    fetches = source.fetches
    assert await read(cache, source, key="page2", at_least=token) == "v3"
    assert await read(cache, source, key="page2", at_least=EventKey(10, 2)) == "v3"
    assert source.fetches == fetches
    assert await read(cache, source, key="page2", at_least=EventKey(10, 4)) == "v3"
    assert source.fetches == fetches + 1  # a later token: not from this entry


async def test_an_entry_expires_after_the_ttl(store: ReadStore) -> None:
    cache = QueryCache(store, ttl_s=0.05)
    source = Source()
    await read(cache, source)
    source.value = "v2"
    assert await read(cache, source) == "v1"
    await asyncio.sleep(0.06)
    assert await read(cache, source) == "v2"  # a projector elsewhere: seen within the TTL


async def test_the_least_recently_used_entries_go_beyond_the_bound(store: ReadStore) -> None:
    cache = QueryCache(store, max_entries=3, ttl_s=60)
    sources = {key: Source(key) for key in ("a", "b", "c", "d")}
    for key in ("a", "b", "c"):
        await read(cache, sources[key], key=key)
    await read(cache, sources["a"], key="a")  # a is now the most recently used
    await read(cache, sources["d"], key="d")  # b, the least recently used, goes
    assert len(cache) == 3
    assert cache.evictions == 1
    for key in ("a", "c", "d"):
        await read(cache, sources[key], key=key)
        assert sources[key].fetches == 1, key
    await read(cache, sources["b"], key="b")
    assert sources["b"].fetches == 2
    assert len(cache) == 3


async def test_concurrent_misses_share_one_fetch_when_it_would_serve_them(
    store: ReadStore,
) -> None:
    cache = QueryCache(store, ttl_s=60)
    source = Source()
    source.hold()
    first = asyncio.create_task(read(cache, source))
    await source.started.wait()
    joiners = [asyncio.create_task(read(cache, source)) for _ in range(6)]
    await asyncio.sleep(0)
    # A caller whose token the fetch in flight cannot vouch for runs its own.
    own = asyncio.create_task(read(cache, source, at_least=EventKey(1, 1)))
    await asyncio.sleep(0)
    assert source.gate is not None
    source.gate.set()
    assert await first == "v1"
    assert await asyncio.gather(*joiners) == ["v1"] * 6
    assert await own == "v1"
    assert source.fetches == 2
    assert (cache.misses, cache.shared) == (2, 6)


async def test_no_caller_joins_a_fetch_that_an_invalidation_overtook(store: ReadStore) -> None:
    cache = QueryCache(store, ttl_s=60)
    stale = Source("before")
    stale.hold()
    first = asyncio.create_task(read(cache, stale))
    await stale.started.wait()
    store.notify_changed(DB, EventKey(3, 1), [("courses", "c")])
    fresh = Source("after")
    # Not the fetch begun before the write (which is still held: joining it would hang).
    assert await asyncio.wait_for(read(cache, fresh), 5) == "after"
    assert stale.gate is not None
    stale.gate.set()
    assert await first == "before"
    assert (cache.misses, cache.shared) == (2, 0)


async def test_a_caller_giving_up_does_not_cancel_the_fetch_it_shares(store: ReadStore) -> None:
    cache = QueryCache(store, ttl_s=60)
    source = Source()
    source.hold()
    first = asyncio.create_task(read(cache, source))
    await source.started.wait()
    second = asyncio.create_task(read(cache, source))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert source.gate is not None
    source.gate.set()
    assert await second == "v1"
    assert len(cache) == 1  # and the result was stored


async def test_a_failed_fetch_reaches_every_caller_and_stores_nothing(store: ReadStore) -> None:
    cache = QueryCache(store, ttl_s=60)
    gate = asyncio.Event()

    async def broken() -> str:
        await gate.wait()
        raise ConnectionError("store away")

    callers = [asyncio.create_task(read(cache, broken)) for _ in range(3)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results), results
    assert len(cache) == 0
    assert await read(cache, Source("back")) == "back"
