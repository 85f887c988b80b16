"""The domain's words: names, enum maps, course staff, and lesson content as a message."""

from __future__ import annotations

import uuid

import pytest

from learnflow.context import Principal
from learnflow.v1 import access_pb2, courses_pb2, learning_pb2
from learnflow.vocabulary import (
    CONTENT_KINDS,
    COURSE_LEVEL_NAMES,
    COURSE_LEVELS,
    COURSE_STATES,
    ENROLLED_STATES,
    ENROLLMENT_STATES,
    ROLE_NAMES,
    ROLES,
    answers_in,
    course_level,
    course_name,
    course_state,
    enrollment_name,
    enrollment_state,
    fill_lesson_content,
    is_course_staff,
    lesson_name,
    user_name,
)

COURSE = uuid.UUID(int=1)
USER = uuid.UUID(int=2)


def test_resource_names() -> None:
    assert course_name(COURSE) == f"courses/{COURSE}"
    assert lesson_name(COURSE, "l1") == f"courses/{COURSE}/lessons/l1"
    assert enrollment_name(str(COURSE), USER) == f"courses/{COURSE}/enrollments/{USER}"
    assert user_name(USER) == f"users/{USER}"


def test_the_maps_cover_every_named_enum_value_and_invert() -> None:
    assert set(ROLES.values()) == set(access_pb2.Role.values()) - {access_pb2.ROLE_UNSPECIFIED}
    assert {ROLES[name]: name for name in ROLES} == ROLE_NAMES
    assert set(COURSE_LEVELS.values()) == set(courses_pb2.CourseLevel.values())
    assert {COURSE_LEVELS[name]: name for name in COURSE_LEVELS} == COURSE_LEVEL_NAMES
    assert set(COURSE_STATES.values()) == set(courses_pb2.CourseState.values()) - {
        courses_pb2.COURSE_STATE_UNSPECIFIED
    }
    assert set(ENROLLMENT_STATES.values()) == set(learning_pb2.EnrollmentState.values()) - {
        learning_pb2.ENROLLMENT_STATE_UNSPECIFIED
    }
    assert set(CONTENT_KINDS) == {
        f.name for f in courses_pb2.Lesson.DESCRIPTOR.oneofs_by_name["content"].fields
    }


def test_unknown_names_map_to_unspecified() -> None:
    assert course_level("expert") == courses_pb2.COURSE_LEVEL_UNSPECIFIED
    assert course_level("advanced") == courses_pb2.COURSE_LEVEL_ADVANCED
    assert course_state("deleted") == courses_pb2.COURSE_STATE_UNSPECIFIED
    assert course_state("archived") == courses_pb2.COURSE_STATE_ARCHIVED
    assert enrollment_state("paused") == learning_pb2.ENROLLMENT_STATE_UNSPECIFIED
    assert enrollment_state("completed") == learning_pb2.ENROLLMENT_STATE_COMPLETED


def test_a_completed_learner_is_still_enrolled_a_withdrawn_one_is_not() -> None:
    assert "completed" in ENROLLED_STATES
    assert "active" in ENROLLED_STATES
    assert "withdrawn" not in ENROLLED_STATES


@pytest.mark.parametrize(
    ("principal", "staff"),
    [
        (None, False),
        (Principal(USER, "instructor"), True),
        (Principal(USER, "student"), True),  # ownership, not the role, makes staff
        (Principal(uuid.uuid4(), "admin"), True),
        (Principal(uuid.uuid4(), "instructor"), False),
    ],
)
def test_course_staff_is_the_owner_or_an_admin(principal: Principal | None, staff: bool) -> None:
    assert is_course_staff(principal, USER) is staff
    assert is_course_staff(principal, str(USER)) is staff  # owner ids come as text too


def test_answers_in_a_stored_quiz() -> None:
    content = {
        "questions": [
            {"id": "q1", "correct_choice_indexes": [1]},
            {"id": 7, "correct_choice_indexes": (0, 2)},
            {"id": "q3"},
        ]
    }
    assert answers_in(content) == {"q1": [1], "7": [0, 2], "q3": []}
    assert answers_in({}) == {}


QUIZ: dict[str, object] = {
    "pass_threshold_percent": 80,
    "questions": [
        {"id": "q1", "prompt": "2+2?", "choices": ["3", "4"]},
        {"id": "q2", "prompt": "1+1?", "choices": ["2", "3"]},
    ],
}


def test_a_quiz_shows_answers_only_when_given() -> None:
    student = courses_pb2.Lesson()
    fill_lesson_content(student, "quiz", QUIZ, {})
    assert student.WhichOneof("content") == "quiz"
    assert student.quiz.pass_threshold_percent == 80
    assert [q.id for q in student.quiz.questions] == ["q1", "q2"]
    assert [list(q.choices) for q in student.quiz.questions] == [["3", "4"], ["2", "3"]]
    assert all(not q.correct_choice_indexes for q in student.quiz.questions)
    staff = courses_pb2.Lesson()
    fill_lesson_content(staff, "quiz", QUIZ, {"q1": [1], "unknown": [0]})
    assert [list(q.correct_choice_indexes) for q in staff.quiz.questions] == [[1], []]


def test_article_video_and_code_exercise_content() -> None:
    article = courses_pb2.Lesson()
    fill_lesson_content(article, "article", {"markdown": "# Hi"}, {})
    assert (article.WhichOneof("content"), article.article.markdown) == ("article", "# Hi")
    video = courses_pb2.Lesson()
    fill_lesson_content(video, "video", {"url": "https://v/1", "duration_seconds": 61}, {})
    assert (video.video.url, video.video.duration_seconds) == ("https://v/1", 61)
    code = courses_pb2.Lesson()
    fill_lesson_content(
        code, "code_exercise", {"language": "go", "prompt": "p", "starter_code": "s"}, {}
    )
    assert (code.code_exercise.language, code.code_exercise.starter_code) == ("go", "s")


def test_an_unknown_content_type_leaves_the_content_unset() -> None:
    message = courses_pb2.Lesson(title="t")
    fill_lesson_content(message, "hologram", {"x": 1}, {})
    assert message.WhichOneof("content") is None
