"""The domain rules: who may change a course, its lifecycle, slugs, enrollment, grading."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable

import pytest

from learnflow.commands.rules import (
    Grade,
    answer_violations,
    course_slug,
    grade,
    require_archivable,
    require_capacity_for_enrolled,
    require_deletable,
    require_editable,
    require_enrollable,
    require_lesson_removable,
    require_publishable,
    require_restorable,
    require_staff,
    require_unpublishable,
    slugify,
)
from learnflow.context import Principal
from learnflow.errors import FailedPrecondition, PermissionDenied
from learnflow.v1 import learning_pb2

OWNER = uuid.uuid4()
COURSE_ID = uuid.UUID(int=7)
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


@dataclasses.dataclass(frozen=True)
class Row:
    """What the rules read of a course row."""

    id: uuid.UUID = COURSE_ID
    owner_id: uuid.UUID = OWNER
    state: str = "published"
    lesson_count: int = 2
    capacity: int = 0
    active_enrollment_count: int = 0
    enrollment_open_at: dt.datetime | None = None
    enrollment_close_at: dt.datetime | None = None


def precondition(rule: Callable[[], None]) -> tuple[str, str]:
    """The (type, subject) of the precondition `rule` refuses."""
    with pytest.raises(FailedPrecondition) as caught:
        rule()
    return caught.value.violation.type, caught.value.violation.subject


SUBJECT = f"courses/{COURSE_ID}"

# ---------------------------------------------------------------------------- course changes


def test_the_owner_and_admins_are_staff() -> None:
    require_staff(Row(), Principal(OWNER, "instructor"))
    require_staff(Row(), Principal(uuid.uuid4(), "admin"))
    # Rows and events may carry the owner as text.
    require_staff(Row(owner_id=str(OWNER)), Principal(OWNER, "student"))  # type: ignore[arg-type]


@pytest.mark.parametrize("role", ["instructor", "student"])
def test_another_user_is_not_staff_whatever_the_role(role: str) -> None:
    with pytest.raises(PermissionDenied):
        require_staff(Row(), Principal(uuid.uuid4(), role))


def test_only_an_archived_course_is_frozen() -> None:
    require_editable(Row(state="draft"))
    require_editable(Row(state="published"))
    assert precondition(lambda: require_editable(Row(state="archived"))) == (
        "COURSE_STATE",
        SUBJECT,
    )


def test_a_draft_with_a_lesson_can_be_published() -> None:
    require_publishable(Row(state="draft", lesson_count=1))


@pytest.mark.parametrize("state", ["published", "archived"])
def test_only_a_draft_can_be_published(state: str) -> None:
    with pytest.raises(FailedPrecondition) as caught:
        require_publishable(Row(state=state, lesson_count=3))
    assert caught.value.violation.type == "COURSE_STATE"
    assert caught.value.message.endswith(f"this one is {state}")


def test_an_empty_draft_cannot_be_published() -> None:
    assert precondition(lambda: require_publishable(Row(state="draft", lesson_count=0))) == (
        "LESSONS",
        SUBJECT,
    )


def test_drafts_and_published_courses_can_be_archived_once() -> None:
    require_archivable(Row(state="draft"))
    require_archivable(Row(state="published"))
    assert precondition(lambda: require_archivable(Row(state="archived")))[0] == "COURSE_STATE"


def test_a_published_course_without_active_learners_can_be_unpublished() -> None:
    require_unpublishable(Row(state="published", active_enrollment_count=0))


@pytest.mark.parametrize("state", ["draft", "archived"])
def test_only_a_published_course_can_be_unpublished(state: str) -> None:
    assert precondition(lambda: require_unpublishable(Row(state=state))) == (
        "COURSE_STATE",
        SUBJECT,
    )


def test_active_learners_keep_a_course_published() -> None:
    course = Row(state="published", active_enrollment_count=1)
    assert precondition(lambda: require_unpublishable(course)) == ("ENROLLMENTS", SUBJECT)


@pytest.mark.parametrize("state", ["draft", "published"])
def test_only_an_archived_course_can_be_restored(state: str) -> None:
    require_restorable(Row(state="archived", active_enrollment_count=3))
    assert precondition(lambda: require_restorable(Row(state=state))) == (
        "COURSE_STATE",
        SUBJECT,
    )


def test_a_draft_that_never_had_learners_can_be_deleted() -> None:
    require_deletable(Row(state="draft"), enrollment_rows=0)


@pytest.mark.parametrize("state", ["published", "archived"])
def test_only_a_draft_can_be_deleted(state: str) -> None:
    assert precondition(lambda: require_deletable(Row(state=state), 0))[0] == "COURSE_STATE"


def test_a_draft_that_had_learners_cannot_be_deleted() -> None:
    # Withdrawn learners count too: unpublished after they left, the course still had them.
    assert precondition(lambda: require_deletable(Row(state="draft"), 1)) == (
        "ENROLLMENTS",
        SUBJECT,
    )


@pytest.mark.parametrize(("capacity", "ok"), [(0, True), (5, True), (6, True), (4, False)])
def test_capacity_cannot_fall_below_the_active_enrollments(capacity: int, ok: bool) -> None:
    course = Row(active_enrollment_count=5)
    if ok:
        require_capacity_for_enrolled(course, capacity)
    else:
        assert precondition(lambda: require_capacity_for_enrolled(course, capacity)) == (
            "CAPACITY",
            SUBJECT,
        )


def test_a_published_course_keeps_its_last_lesson() -> None:
    require_lesson_removable(Row(state="published", lesson_count=2))
    require_lesson_removable(Row(state="draft", lesson_count=1))
    require_lesson_removable(Row(state="archived", lesson_count=1))
    assert precondition(lambda: require_lesson_removable(Row(lesson_count=1)))[0] == "LESSONS"


# ---------------------------------------------------------------------------- slugs


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("Intro to Rust", "intro-to-rust"),
        ("  C++ & Go: 2nd edition!  ", "c-go-2nd-edition"),
        ("Café Über Straße", "cafe-uber-strae"),
        ("---", "course"),
        ("日本語", "course"),
        ("", "course"),
        ("a__b", "a-b"),
    ],
)
def test_slugify(title: str, slug: str) -> None:
    assert slugify(title) == slug


def test_a_slug_is_at_most_80_characters_and_never_ends_in_a_dash() -> None:
    slug = slugify("a" * 79 + " b" * 10)
    assert slug == "a" * 79
    assert len(slugify("word " * 40)) <= 80
    assert not slugify("word " * 40).endswith("-")


def test_a_course_slug_is_the_title_slug_and_its_random_suffix() -> None:
    assert course_slug("Intro to Python!", "k3x9q2ab") == "intro-to-python-k3x9q2ab"
    assert course_slug("¿Qué?", "00000000") == "que-00000000"
    assert course_slug("", "abcdefgh") == "course-abcdefgh"


# ---------------------------------------------------------------------------- enrollment


def test_a_published_course_with_an_open_window_and_seats_is_enrollable() -> None:
    require_enrollable(
        Row(
            capacity=10,
            active_enrollment_count=9,
            enrollment_open_at=NOW,  # opens exactly now: open
            enrollment_close_at=NOW + dt.timedelta(seconds=1),
        ),
        NOW,
    )
    require_enrollable(Row(capacity=0, active_enrollment_count=10_000), NOW)  # unlimited


@pytest.mark.parametrize("state", ["draft", "archived"])
def test_only_published_courses_take_enrollments(state: str) -> None:
    assert precondition(lambda: require_enrollable(Row(state=state), NOW)) == (
        "COURSE_STATE",
        SUBJECT,
    )


@pytest.mark.parametrize(
    ("opens", "closes", "message"),
    [
        (NOW + dt.timedelta(seconds=1), None, "enrollment opens at 2026-03-01T12:00:01+00:00"),
        (None, NOW, "enrollment closed at 2026-03-01T12:00:00+00:00"),  # closes exactly now
        (None, NOW - dt.timedelta(days=1), "enrollment closed at 2026-02-28T12:00:00+00:00"),
    ],
)
def test_enrollment_outside_the_window_is_refused(
    opens: dt.datetime | None, closes: dt.datetime | None, message: str
) -> None:
    course = Row(enrollment_open_at=opens, enrollment_close_at=closes)
    with pytest.raises(FailedPrecondition) as caught:
        require_enrollable(course, NOW)
    assert caught.value.violation.type == "ENROLLMENT_WINDOW"
    assert caught.value.message == message


def test_a_full_course_is_refused() -> None:
    with pytest.raises(FailedPrecondition) as caught:
        require_enrollable(Row(capacity=3, active_enrollment_count=3), NOW)
    assert caught.value.violation.type == "CAPACITY"
    assert "3 seats" in caught.value.message


def test_the_state_is_checked_before_the_window_and_the_seats() -> None:
    course = Row(state="draft", capacity=1, active_enrollment_count=1, enrollment_close_at=NOW)
    assert precondition(lambda: require_enrollable(course, NOW))[0] == "COURSE_STATE"


# ---------------------------------------------------------------------------- quizzes

QUIZ = {
    "questions": [
        {"id": "q1", "choices": ["3", "4"], "correct_choice_indexes": [1]},
        {"id": "q2", "choices": ["2", "4", "5"], "correct_choice_indexes": [0, 2]},
        {"id": "q3", "choices": ["yes", "no"], "correct_choice_indexes": [0]},
    ],
    "pass_threshold_percent": 66,
}


def answer(question_id: str, *choices: int) -> learning_pb2.QuizAnswer:
    return learning_pb2.QuizAnswer(question_id=question_id, choice_indexes=choices)


def test_all_right_scores_100() -> None:
    answers = [answer("q1", 1), answer("q2", 2, 0), answer("q3", 0)]
    assert grade(QUIZ, answers) == Grade(100, True)


def test_a_question_counts_only_with_exactly_its_correct_choices() -> None:
    assert grade(QUIZ, [answer("q2", 0)]).score == 0  # a subset
    assert grade(QUIZ, [answer("q2", 0, 1, 2)]).score == 0  # a superset
    assert grade(QUIZ, [answer("q2", 0, 2, 2)]).score == 33  # repeats are one choice


def test_unanswered_questions_count_as_wrong_and_the_score_rounds_down() -> None:
    assert grade(QUIZ, []) == Grade(0, False)
    assert grade(QUIZ, [answer("q1", 1)]) == Grade(33, False)
    assert grade(QUIZ, [answer("q1", 1), answer("q3", 0)]) == Grade(66, True)


def test_the_threshold_itself_passes() -> None:
    two_of_three = [answer("q1", 1), answer("q3", 0)]
    assert grade({**QUIZ, "pass_threshold_percent": 66}, two_of_three).passed is True
    assert grade({**QUIZ, "pass_threshold_percent": 67}, two_of_three).passed is False


def test_answers_must_name_questions_and_choices_of_the_quiz() -> None:
    violations = answer_violations(
        QUIZ, [answer("q1", 1), answer("nope", 0), answer("q2", 3), answer("q3", -1)]
    )
    assert [(v.field, v.description) for v in violations] == [
        ("answers[1].question_id", "no such question in the quiz"),
        ("answers[2].choice_indexes", "must be indexes into the choices (0 to 2)"),
        ("answers[3].choice_indexes", "must be indexes into the choices (0 to 1)"),
    ]
    assert answer_violations(QUIZ, [answer("q2", 0, 1, 2), answer("q3")]) == []
