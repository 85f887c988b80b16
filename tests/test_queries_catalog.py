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
