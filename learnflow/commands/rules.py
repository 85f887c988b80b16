"""The domain rules of courses and learning, as pure functions: who may change a course, the
course lifecycle, slugs, who may enroll, and how a quiz attempt is graded. No I/O: handlers
load rows, ask these functions, then write; each rule has a fast unit test
(tests/unit/test_rules.py).

Rows are anything with the course table's attributes (`owner_id`, `state`, `lesson_count`,
`capacity`, `active_enrollment_count`, enrollment window), so tests pass plain objects.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from learnflow.context import Principal
from learnflow.errors import FailedPrecondition, FieldViolation, PermissionDenied
from learnflow.v1 import learning_pb2
from learnflow.vocabulary import course_name, is_course_staff

# ---------------------------------------------------------------------------- course changes


def require_staff(course: Any, principal: Principal) -> None:
    if not is_course_staff(principal, course.owner_id):
        raise PermissionDenied("only the course's owner or an admin may change it")


def require_editable(course: Any) -> None:
    if course.state == "archived":
        raise FailedPrecondition(
            "COURSE_STATE", course_name(course.id), "an archived course can no longer be changed"
        )


def require_publishable(course: Any) -> None:
    """draft -> published, and only with something to learn in it."""
    if course.state != "draft":
        raise FailedPrecondition(
            "COURSE_STATE",
            course_name(course.id),
            f"only a draft course can be published; this one is {course.state}",
        )
    if course.lesson_count < 1:
        raise FailedPrecondition(
            "LESSONS", course_name(course.id), "a course needs at least one lesson to be published"
        )


def require_archivable(course: Any) -> None:
    if course.state == "archived":
        raise FailedPrecondition(
            "COURSE_STATE", course_name(course.id), "the course is already archived"
        )


def require_unpublishable(course: Any) -> None:
    """published -> draft, and only while no learner is actively enrolled: a draft is hidden
    from the catalog and refuses enrollments, which would strand active learners."""
    if course.state != "published":
        raise FailedPrecondition(
            "COURSE_STATE",
            course_name(course.id),
            f"only a published course can be unpublished; this one is {course.state}",
        )
    if course.active_enrollment_count > 0:
        raise FailedPrecondition(
            "ENROLLMENTS",
            course_name(course.id),
            f"{course.active_enrollment_count} learner(s) are actively enrolled; archive the"
            " course instead",
        )


def require_restorable(course: Any) -> None:
    """archived -> draft. Not straight back to published: an archived course was frozen and
    may be out of date, so it returns as a draft its staff review (and may edit) before they
    publish it again, which is one explicit step; `:restore` is no AIP-164 undelete (nothing
    was deleted) but the way out of the archive."""
    if course.state != "archived":
        raise FailedPrecondition(
            "COURSE_STATE",
            course_name(course.id),
            f"only an archived course can be restored; this one is {course.state}",
        )


def require_deletable(course: Any, enrollment_rows: int) -> None:
    """Only a draft that never had a learner (no enrollment row, whatever its state): a
    course someone took stays, archived, as the record of their progress."""
    if course.state != "draft":
        raise FailedPrecondition(
            "COURSE_STATE",
            course_name(course.id),
            f"only a draft course can be deleted; this one is {course.state}",
        )
    if enrollment_rows > 0:
        raise FailedPrecondition(
            "ENROLLMENTS",
            course_name(course.id),
            "the course has had learners; it cannot be deleted",
        )


def require_capacity_for_enrolled(course: Any, capacity: int) -> None:
    """A new capacity (0: unlimited) may not fall below the learners already in."""
    if capacity and capacity < course.active_enrollment_count:
        raise FailedPrecondition(
            "CAPACITY",
            course_name(course.id),
            f"capacity cannot be below the {course.active_enrollment_count} active enrollments",
        )


def require_lesson_removable(course: Any) -> None:
    if course.state == "published" and course.lesson_count <= 1:
        raise FailedPrecondition(
            "LESSONS", course_name(course.id), "a published course must keep at least one lesson"
        )


# ---------------------------------------------------------------------------- slugs


def slugify(title: str) -> str:
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")
    return slug[:80].strip("-") or "course"


# A course's slug is its title's slug plus a random suffix, whoever else has a course of that
# title: were it the first free one (`intro`, `intro-2`, ...), creating a course would tell an
# instructor whether another's unpublished draft has a given title. 8 characters of 36: 41 bits,
# so that a collision (refused by the unique index, then retried) is a rarity.
SLUG_SUFFIX_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
SLUG_SUFFIX_LENGTH = 8


def course_slug(title: str, suffix: str) -> str:
    """`intro-to-python-k3x9q2ab` for the title "Intro to Python" and a random `suffix`."""
    return f"{slugify(title)}-{suffix}"


# ---------------------------------------------------------------------------- enrollment


def require_enrollable(course: Any, now: dt.datetime) -> None:
    """Published, inside its enrollment window, with a free seat."""
    name = course_name(course.id)
    if course.state != "published":
        raise FailedPrecondition(
            "COURSE_STATE",
            name,
            f"only published courses accept enrollments; this one is {course.state}",
        )
    if course.enrollment_open_at is not None and now < course.enrollment_open_at:
        raise FailedPrecondition(
            "ENROLLMENT_WINDOW",
            name,
            f"enrollment opens at {course.enrollment_open_at.isoformat()}",
        )
    if course.enrollment_close_at is not None and now >= course.enrollment_close_at:
        raise FailedPrecondition(
            "ENROLLMENT_WINDOW",
            name,
            f"enrollment closed at {course.enrollment_close_at.isoformat()}",
        )
    if course.capacity and course.active_enrollment_count >= course.capacity:
        raise FailedPrecondition(
            "CAPACITY", name, f"the course is full ({course.capacity} seats taken)"
        )


# ---------------------------------------------------------------------------- quizzes


@dataclass(frozen=True)
class Grade:
    score: int  # percent of questions answered exactly right, rounded down
    passed: bool


def answer_violations(
    quiz: Mapping[str, Any], answers: Sequence[learning_pb2.QuizAnswer]
) -> list[FieldViolation]:
    """Answers that name no question of `quiz` or choices it does not have."""
    questions = {q["id"]: q for q in quiz["questions"]}
    bad: list[FieldViolation] = []
    for i, answer in enumerate(answers):
        question = questions.get(answer.question_id)
        if question is None:
            bad.append(FieldViolation(f"answers[{i}].question_id", "no such question in the quiz"))
        elif any(not 0 <= k < len(question["choices"]) for k in answer.choice_indexes):
            bad.append(
                FieldViolation(
                    f"answers[{i}].choice_indexes",
                    f"must be indexes into the choices (0 to {len(question['choices']) - 1})",
                )
            )
    return bad


def grade(quiz: Mapping[str, Any], answers: Sequence[learning_pb2.QuizAnswer]) -> Grade:
    """A question counts when exactly its correct choices were chosen; unanswered ones count
    as wrong. Passed at the quiz's threshold percent or above."""
    chosen = {a.question_id: set(a.choice_indexes) for a in answers}
    questions = quiz["questions"]
    right = sum(1 for q in questions if chosen.get(q["id"]) == set(q["correct_choice_indexes"]))
    score = right * 100 // len(questions)
    return Grade(score, score >= quiz["pass_threshold_percent"])
