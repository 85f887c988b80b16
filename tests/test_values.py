"""Input that storage refuses is refused first, with the path of each offending field."""

from __future__ import annotations

import grpc

from learnflow.v1 import courses_pb2, courses_pb2_grpc
from learnflow.values import nul_text_violations
from tests.commands_support import Pg, fails
from tests.support import Caller, field_violations


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
