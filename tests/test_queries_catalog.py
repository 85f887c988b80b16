"""CatalogService: the course list (filters, search, keyset pages), courses and lessons."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf import field_mask_pb2

from learnflow.server import Backend
from learnflow.v1 import courses_pb2
from tests.commands_support import (
    add_lesson,
    article,
    courses,
    enroll,
    new_course,
    published_course,
    quiz_lesson,
)
from tests.read_support import catalog, settle
from tests.support import Caller, field_violations


def tag() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


async def listed(who: Caller | None, channel: grpc.aio.Channel, **query: object) -> list[str]:
    """Every course id the catalog lists for `query`, following page tokens."""
    ids: list[str] = []
    token = ""
    while True:
        reply = await catalog(channel).ListCourses(
            courses_pb2.ListCoursesRequest(page_token=token, **query),  # type: ignore[arg-type]
            metadata=who.metadata() if who else (),
        )
        ids += [c.id for c in reply.courses]
        token = reply.next_page_token
        if not token:
            return ids


async def test_published_courses_are_listed_newest_first_with_denormalised_fields(
    channel: grpc.aio.Channel,
    instructor: Caller,
    caller: Caller,
    backend: Backend,
    postgres_url: str,
) -> None:
    label = tag()
    first, _ = await published_course(instructor, tags=[label], summary="one")
    second, _ = await published_course(
        instructor, lessons=[article(), article("Two")], tags=[label]
    )
    draft = await new_course(instructor, tags=[label])
    await enroll(caller, second.id)
    await settle(postgres_url, backend.store)

    reply = await catalog(channel).ListCourses(courses_pb2.ListCoursesRequest(tag=label))
    assert [c.id for c in reply.courses] == [second.id, first.id]
    assert draft.id not in [c.id for c in reply.courses]
    top = reply.courses[0]
    assert top.instructor_name == "Instructor"
    assert top.lesson_count == 2
    assert top.enrollment_count == 1
    assert top.state == courses_pb2.COURSE_STATE_PUBLISHED
    assert top.publish_time.seconds > 0
    assert reply.next_page_token == ""


async def test_filters_by_tag_level_and_title_search(
    channel: grpc.aio.Channel, instructor: Caller, backend: Backend, postgres_url: str
) -> None:
    label = tag()
    word = uuid.uuid4().hex[:8]
    beginner, _ = await published_course(
        instructor, title=f"Intro to {word} Cooking", tags=[label], level=1
    )
    advanced, _ = await published_course(
        instructor, title=f"Advanced {word} baking", tags=[label, "extra"], level=3
    )
    other, _ = await published_course(instructor, title="Unrelated topic", tags=[label])
    await settle(postgres_url, backend.store)

    assert set(await listed(None, channel, tag=label)) == {beginner.id, advanced.id, other.id}
    assert await listed(None, channel, tag=label, level=3) == [advanced.id]
    assert await listed(None, channel, tag=label, level=1) == [beginner.id]
    # Case-insensitive substring of the title; regex characters are taken literally.
    assert set(await listed(None, channel, q=word.upper())) == {beginner.id, advanced.id}
    assert await listed(None, channel, q=f"{word} cook") == [beginner.id]
    assert await listed(None, channel, q=f"{word}.*") == []
    assert await listed(None, channel, tag=label, q="unrelated") == [other.id]


async def test_pages_are_stable_while_courses_are_published_concurrently(
    channel: grpc.aio.Channel, instructor: Caller, backend: Backend, postgres_url: str
) -> None:
    label = tag()
    original = [(await published_course(instructor, tags=[label]))[0].id for _ in range(5)]
    await settle(postgres_url, backend.store)
    stub = catalog(channel)
    page = await stub.ListCourses(courses_pb2.ListCoursesRequest(tag=label, page_size=2))
    seen = [c.id for c in page.courses]
    assert seen == original[::-1][:2]
    # Newer courses appear while the client pages: they sort before the token's position.
    for _ in range(2):
        await published_course(instructor, tags=[label])
    await settle(postgres_url, backend.store)
    token = page.next_page_token
    while token:
        page = await stub.ListCourses(
            courses_pb2.ListCoursesRequest(tag=label, page_size=2, page_token=token)
        )
        seen += [c.id for c in page.courses]
        token = page.next_page_token
    assert seen == original[::-1]  # every original course once, none twice, in order


async def test_bad_page_tokens_and_sizes_are_invalid_arguments(
    channel: grpc.aio.Channel, instructor: Caller, backend: Backend, postgres_url: str
) -> None:
    label = tag()
    for _ in range(3):
        await published_course(instructor, tags=[label])
    await settle(postgres_url, backend.store)
    stub = catalog(channel)
    page = await stub.ListCourses(courses_pb2.ListCoursesRequest(tag=label, page_size=1))
    assert page.next_page_token
    for request in (
        courses_pb2.ListCoursesRequest(page_token="not-a-token!"),
        courses_pb2.ListCoursesRequest(page_token="eyJmb28iOiAxfQ"),
        # A real token, replayed with other filters.
        courses_pb2.ListCoursesRequest(tag="other", page_token=page.next_page_token),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListCourses(request)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "page_token" in field_violations(err.value)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListCourses(courses_pb2.ListCoursesRequest(page_size=-1))
    assert "page_size" in field_violations(err.value)


async def test_unpublished_courses_are_visible_only_to_staff(
    channel: grpc.aio.Channel,
    instructor: Caller,
    caller: Caller,
    admin: Caller,
    backend: Backend,
    postgres_url: str,
) -> None:
    draft = await new_course(instructor)
    lesson = await add_lesson(instructor, draft.id)
    other = await Caller.with_role(channel, postgres_url, "instructor", name="Other")
    await settle(postgres_url, backend.store)
    stub = catalog(channel)
    for who in (None, caller, other):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetCourse(
                courses_pb2.GetCourseRequest(course_id=draft.id),
                metadata=who.metadata() if who else (),
            )
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    for who in (instructor, admin):
        reply = await stub.GetCourse(
            courses_pb2.GetCourseRequest(course_id=draft.id), metadata=who.metadata()
        )
        assert reply.course.state == courses_pb2.COURSE_STATE_DRAFT
        assert [s.id for s in reply.lessons] == [lesson.id]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetLesson(
            courses_pb2.GetLessonRequest(course_id=draft.id, lesson_id=lesson.id),
            metadata=caller.metadata(),
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetCourse(courses_pb2.GetCourseRequest(course_id="nope"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_course_outline_and_lesson_neighbours_follow_edits(
    channel: grpc.aio.Channel, instructor: Caller, backend: Backend, postgres_url: str
) -> None:
    course, lessons = await published_course(
        instructor, lessons=[article("A"), article("B"), article("C")]
    )
    a, b, c = lessons
    stub = courses(channel)
    await stub.DeleteLesson(
        courses_pb2.DeleteLessonRequest(course_id=course.id, lesson_id=b.id),
        metadata=instructor.metadata(),
    )
    renamed = await stub.UpdateCourse(
        courses_pb2.UpdateCourseRequest(
            course=courses_pb2.Course(id=course.id, title="Renamed course"),
            update_mask=field_mask_pb2.FieldMask(paths=["title"]),
        ),
        metadata=instructor.metadata(),
    )
    md = instructor.metadata(renamed.consistency_token)
    got = await catalog(channel).GetCourse(
        courses_pb2.GetCourseRequest(course_id=course.id), metadata=md
    )
    assert [(s.id, s.position) for s in got.lessons] == [(a.id, 1), (c.id, 2)]
    assert got.course.lesson_count == 2
    lesson_c = (
        await catalog(channel).GetLesson(
            courses_pb2.GetLessonRequest(course_id=course.id, lesson_id=c.id), metadata=md
        )
    ).lesson
    assert (lesson_c.position, lesson_c.previous_lesson_id, lesson_c.next_lesson_id) == (
        2,
        a.id,
        "",
    )
    assert lesson_c.course_title == "Renamed course"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await catalog(channel).GetLesson(
            courses_pb2.GetLessonRequest(course_id=course.id, lesson_id=b.id), metadata=md
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_lessons_for_enrolled_users_and_staff_quiz_answers_for_staff_only(
    channel: grpc.aio.Channel,
    instructor: Caller,
    caller: Caller,
    admin: Caller,
    backend: Backend,
    postgres_url: str,
) -> None:
    course, lessons = await published_course(instructor, lessons=[article(), quiz_lesson()])
    quiz = lessons[1]
    request = courses_pb2.GetLessonRequest(course_id=course.id, lesson_id=quiz.id)
    await settle(postgres_url, backend.store)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await catalog(channel).GetLesson(request, metadata=caller.metadata())
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    enrolled = await enroll(caller, course.id)

    student_view = (
        await catalog(channel).GetLesson(
            request, metadata=caller.metadata(enrolled.consistency_token)
        )
    ).lesson
    assert [q.id for q in student_view.quiz.questions] == ["q1", "q2"]
    assert [list(q.choices) for q in student_view.quiz.questions] == [["3", "4"], ["2", "3", "4"]]
    assert all(not q.correct_choice_indexes for q in student_view.quiz.questions)
    assert student_view.previous_lesson_id == lessons[0].id
    assert student_view.course_title == course.title

    for staff in (instructor, admin):
        staff_view = (await catalog(channel).GetLesson(request, metadata=staff.metadata())).lesson
        assert [list(q.correct_choice_indexes) for q in staff_view.quiz.questions] == [[1], [0, 2]]


# ---------------------------------------------------------------------------- discovery


async def test_search_covers_title_summary_and_tags_ignoring_case_and_accents(
    channel: grpc.aio.Channel, instructor: Caller, backend: Backend, postgres_url: str
) -> None:
    word = uuid.uuid4().hex[:8]
    by_title, _ = await published_course(instructor, title=f"Crème {word} brûlée")
    by_summary, _ = await published_course(instructor, summary=f"All about {word} SAUCES")
    by_tag, _ = await published_course(instructor, tags=[f"x{word}"])
    await settle(postgres_url, backend.store)
    assert set(await listed(None, channel, q=f"CREME {word} BRULEE")) == {by_title.id}
    assert set(await listed(None, channel, q=f"{word} sauces")) == {by_summary.id}
    assert await listed(None, channel, q=f"x{word}") == [by_tag.id]
    assert set(await listed(None, channel, q=word)) == {by_title.id, by_summary.id, by_tag.id}
    assert await listed(None, channel, q=f"{word}.*") == []


async def test_several_tags_must_all_match(
    channel: grpc.aio.Channel, instructor: Caller, backend: Backend, postgres_url: str
) -> None:
    one, two = tag(), tag()
    both, _ = await published_course(instructor, tags=[one, two])
    only_one, _ = await published_course(instructor, tags=[one])
    await settle(postgres_url, backend.store)
    assert set(await listed(None, channel, tags=[one])) == {both.id, only_one.id}
    assert await listed(None, channel, tags=[one, two]) == [both.id]
    assert await listed(None, channel, tag=two, tags=[one]) == [both.id]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await catalog(channel).ListCourses(courses_pb2.ListCoursesRequest(tags=[one, ""]))
    assert "tags" in field_violations(err.value)


async def test_orders_by_title_and_popularity_page_with_their_own_keys(
    channel: grpc.aio.Channel,
    instructor: Caller,
    caller: Caller,
    admin: Caller,
    backend: Backend,
    postgres_url: str,
) -> None:
    label = tag()
    banana, _ = await published_course(instructor, title="banana course", tags=[label])
    apple, _ = await published_course(instructor, title="Apple course", tags=[label])
    cherry, _ = await published_course(instructor, title="Cherry course", tags=[label])
    for who in (caller, admin):
        await enroll(who, cherry.id)
    await enroll(caller, banana.id)
    await settle(postgres_url, backend.store)
    assert await listed(None, channel, tag=label, order_by="title") == [
        apple.id,
        banana.id,
        cherry.id,
    ]
    by_popularity = [cherry.id, banana.id, apple.id]
    assert await listed(None, channel, tag=label, order_by="enrollment_count desc") == (
        by_popularity
    )
    assert await listed(None, channel, tag=label, order_by="publish_time desc") == [
        cherry.id,
        apple.id,
        banana.id,
    ]
    stub = catalog(channel)
    first = await stub.ListCourses(
        courses_pb2.ListCoursesRequest(tag=label, order_by="title", page_size=2)
    )
    assert (first.total_size, len(first.courses)) == (3, 2)
    rest = await stub.ListCourses(
        courses_pb2.ListCoursesRequest(
            tag=label, order_by="title", page_size=2, page_token=first.next_page_token
        )
    )
    assert ([c.id for c in rest.courses], rest.total_size) == ([cherry.id], 0)
    # A token of one order is refused in another, and an unknown order names the field.
    for request in (
        courses_pb2.ListCoursesRequest(tag=label, page_token=first.next_page_token),
        courses_pb2.ListCoursesRequest(order_by="price"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListCourses(request)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (await stub.ListCourses(courses_pb2.ListCoursesRequest(tag=label, q="cherry"))) == (
        courses_pb2.ListCoursesResponse(courses=[rest.courses[0]], total_size=1)
    )


# ---------------------------------------------------------------------------- authored courses


async def authored(who: Caller, **query: object) -> list[str]:
    ids: list[str] = []
    token = ""
    while True:
        reply = await catalog(who.channel).ListAuthoredCourses(
            courses_pb2.ListAuthoredCoursesRequest(page_token=token, page_size=2, **query),  # type: ignore[arg-type]
            metadata=who.metadata(),
        )
        ids += [c.id for c in reply.courses]
        token = reply.next_page_token
        if not token:
            return ids


async def test_authors_list_their_own_courses_in_every_state(
    channel: grpc.aio.Channel,
    instructor: Caller,
    admin: Caller,
    backend: Backend,
    postgres_url: str,
) -> None:
    draft = await new_course(instructor)
    published, _ = await published_course(instructor)
    archived, _ = await published_course(instructor)
    await courses(channel).ArchiveCourse(
        courses_pb2.ArchiveCourseRequest(course_id=archived.id), metadata=instructor.metadata()
    )
    deleted = await new_course(instructor)
    await courses(channel).DeleteCourse(
        courses_pb2.DeleteCourseRequest(course_id=deleted.id), metadata=instructor.metadata()
    )
    other = await Caller.with_role(channel, postgres_url, "instructor", name="Other")
    theirs = await new_course(other)
    await settle(postgres_url, backend.store)
    assert await authored(instructor) == [archived.id, published.id, draft.id]  # newest first
    assert await authored(instructor, state=courses_pb2.COURSE_STATE_DRAFT) == [draft.id]
    assert await authored(instructor, state=courses_pb2.COURSE_STATE_ARCHIVED) == [archived.id]
    assert await authored(other) == [theirs.id]
    # Admins see every author's courses; a deleted course is gone for everyone.
    newest = await catalog(channel).ListAuthoredCourses(
        courses_pb2.ListAuthoredCoursesRequest(page_size=5), metadata=admin.metadata()
    )
    assert [c.id for c in newest.courses][:4] == [theirs.id, archived.id, published.id, draft.id]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await catalog(channel).GetCourse(
            courses_pb2.GetCourseRequest(course_id=deleted.id), metadata=instructor.metadata()
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_unpublished_and_restored_courses_leave_the_catalog(
    channel: grpc.aio.Channel, instructor: Caller, backend: Backend, postgres_url: str
) -> None:
    label = tag()
    course, _ = await published_course(instructor, tags=[label])
    await settle(postgres_url, backend.store)
    assert await listed(None, channel, tag=label) == [course.id]
    await courses(channel).UnpublishCourse(
        courses_pb2.UnpublishCourseRequest(course_id=course.id), metadata=instructor.metadata()
    )
    await settle(postgres_url, backend.store)
    assert await listed(None, channel, tag=label) == []
    assert await authored(instructor, state=courses_pb2.COURSE_STATE_DRAFT) == [course.id]
