"""Catalog pages come from the query cache, never older than a caller's consistency token, on
the process whose projector wrote the change and on another one (issue 14, ListCourses)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import grpc
import pytest

from learnflow.server import Backend
from learnflow.settings import Settings
from learnflow.v1 import courses_pb2
from tests.commands_support import add_lesson, courses, new_course, published_course
from tests.read_support import catalog, settle
from tests.server_process import server_process
from tests.support import Caller


def tag() -> str:
    return f"qc-{uuid.uuid4().hex[:10]}"


async def publish(who: Caller, label: str) -> tuple[str, str]:
    """A new course tagged `label`, published: its id and the publish's consistency token."""
    course = await new_course(who, tags=[label])
    await add_lesson(who, course.id)
    reply = await courses(who.channel).PublishCourse(
        courses_pb2.PublishCourseRequest(course_id=course.id), metadata=who.metadata()
    )
    return course.id, reply.consistency_token


async def listed(
    channel: grpc.aio.Channel, label: str, token: str = ""
) -> courses_pb2.ListCoursesResponse:
    return await catalog(channel).ListCourses(
        courses_pb2.ListCoursesRequest(tag=label),
        metadata=(("x-consistency-token", token),) if token else (),
        timeout=10,
    )


def ids(page: courses_pb2.ListCoursesResponse) -> list[str]:
    return [c.id for c in page.courses]


@pytest.fixture
def long_ttl(backend: Backend) -> Iterator[None]:
    """Entries of the in-process query cache outlive the test: only an invalidation (or a
    token beyond their label) can make a read skip them."""
    assert backend.query_cache is not None
    ttl = backend.query_cache.ttl_s
    backend.query_cache.ttl_s = 600.0
    yield
    backend.query_cache.ttl_s = ttl


@pytest.mark.usefixtures("long_ttl")
async def test_a_published_course_is_listed_right_after_a_cached_read_of_the_page(
    backend: Backend, channel: grpc.aio.Channel, instructor: Caller, postgres_url: str
) -> None:
    cache = backend.query_cache
    assert cache is not None
    label = tag()
    first, _ = await published_course(instructor, tags=[label])
    await settle(postgres_url, backend.store)
    page = await listed(channel, label)
    assert ids(page) == [first.id]
    # A signed-in caller gets the anonymous caller's entry: the page is the same for all.
    hits = cache.hits
    again = await catalog(channel).ListCourses(
        courses_pb2.ListCoursesRequest(tag=label), metadata=instructor.metadata()
    )
    assert cache.hits == hits + 1
    assert again == page

    # Read with the publish's token: the new course, first (newest), and counted.
    second, token = await publish(instructor, label)
    fresh = await listed(channel, label, token)
    assert ids(fresh) == [second, first.id]
    assert fresh.total_size == 2

    # And without a token, once the projector has written it: this process's projector
    # dropped the page (the TTL is far away), so it is not served stale.
    third, token = await publish(instructor, label)
    await settle(postgres_url, backend.store)
    assert ids(await listed(channel, label)) == [third, second, first.id]


async def test_another_process_answers_a_token_fresh_and_the_rest_within_the_ttl(
    backend: Backend,
    settings: Settings,
    channel: grpc.aio.Channel,
    instructor: Caller,
    postgres_url: str,
) -> None:
    """The session's server leads the projector; the other processes stand by, so their
    caches only learn of changes through tokens and the TTL."""
    label = tag()
    first, _ = await published_course(instructor, tags=[label])
    await settle(postgres_url, backend.store)
    ttl_s = settings.read_cache_ttl_s
    async with (
        server_process(settings, extra_env={"LEARNFLOW_READ_CACHE_TTL_S": "600"}) as lasting,
        server_process(settings) as default,
        grpc.aio.insecure_channel(lasting.target) as remote,
        grpc.aio.insecure_channel(default.target) as other,
    ):
        for end in (remote, other):
            assert ids(await listed(end, label)) == [first.id]  # cached there

        second, token = await publish(instructor, label)
        assert ids(await listed(channel, label, token)) == [second, first.id]  # in the store
        written = time.monotonic()

        # Without a token, the process whose entries last 600 s still answers the cached
        # page (what makes the next read mean something) ...
        assert ids(await listed(remote, label)) == [first.id]
        # ... and with the token it never does.
        fresh = await listed(remote, label, token)
        assert ids(fresh) == [second, first.id]
        assert fresh.total_size == 2

        # With the default TTL, a read begun a TTL after the store had the course lists it.
        await asyncio.sleep(max(0.0, written + ttl_s + 0.05 - time.monotonic()))
        assert ids(await listed(other, label)) == [second, first.id]
