"""Input that storage refuses is refused first, with the path of each offending field."""

from __future__ import annotations

import uuid

import grpc
import pytest

from learnflow.errors import InvalidArgument
from learnflow.v1 import courses_pb2, courses_pb2_grpc
from learnflow.values import nul_text_violations, parse_uuid, require_uuid
from tests.commands_support import Pg, fails
from tests.support import Caller, field_violations


def test_require_uuid_accepts_and_refuses_what_parse_uuid_does() -> None:
    canonical = str(uuid.uuid4())
    for spelling in (canonical, canonical.upper(), canonical.replace("-", ""), f"{{{canonical}}}"):
        assert require_uuid(spelling, "lesson_id") == spelling
        parse_uuid(spelling, "lesson_id")  # the slow path agrees
    for bad in ("", "not-a-uuid", canonical[:-1], canonical + "0", canonical + "\n", "x" * 36):
        with pytest.raises(InvalidArgument) as refused:
            require_uuid(bad, "lesson_id")
        assert [v.field for v in refused.value.violations] == ["lesson_id"]
        with pytest.raises(InvalidArgument):
            parse_uuid(bad, "lesson_id")


def test_nul_text_is_found_in_nested_repeated_and_oneof_fields() -> None:
    lesson = courses_pb2.Lesson(
        title="fine",
        quiz=courses_pb2.Quiz(
            questions=[
                courses_pb2.QuizQuestion(id="q1", prompt="ok", choices=["a", "b\x00"]),
            ]
        ),
    )
    request = courses_pb2.CreateLessonRequest(course_id="c\x00", lesson=lesson)
    paths = {v.field for v in nul_text_violations(request)}
    assert paths == {"course_id", "lesson.quiz.questions[0].choices[1]"}


def test_clean_text_has_no_violations() -> None:
    course = courses_pb2.Course(title="Tab\tand newline\n are fine", tags=["x", "y"])
    assert nul_text_violations(courses_pb2.CreateCourseRequest(course=course)) == []


async def test_nul_text_is_refused_before_the_handler_and_writes_nothing(
    instructor: Caller, pg: Pg
) -> None:
    stub = courses_pb2_grpc.CourseServiceStub(instructor.channel)
    course = courses_pb2.Course(title="Null\x00Course", tags=["ok", "bad\x00"])
    async with fails(grpc.StatusCode.INVALID_ARGUMENT, pg) as err:
        await stub.CreateCourse(
            courses_pb2.CreateCourseRequest(course=course), metadata=instructor.metadata()
        )
    assert set(field_violations(err.value)) == {"course.title", "course.tags[1]"}
