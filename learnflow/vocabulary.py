"""The domain's words, written once: resource names, roles, course levels and states,
enrollment states, who counts as course staff, and how stored lesson content maps to the
`Lesson` message. Commands and queries both speak it; it imports only the contract.

Names are the strings PostgreSQL rows, events and read-model documents hold; the maps turn
them into the contract's enum values and back.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from learnflow.context import Principal
from learnflow.v1 import access_pb2, courses_pb2, learning_pb2

Id = uuid.UUID | str

ROLES: dict[str, access_pb2.Role.ValueType] = {
    "student": access_pb2.ROLE_STUDENT,
    "instructor": access_pb2.ROLE_INSTRUCTOR,
    "admin": access_pb2.ROLE_ADMIN,
}
ROLE_NAMES = {value: name for name, value in ROLES.items()}

COURSE_LEVELS: dict[str, courses_pb2.CourseLevel.ValueType] = {
    "unspecified": courses_pb2.COURSE_LEVEL_UNSPECIFIED,
    "beginner": courses_pb2.COURSE_LEVEL_BEGINNER,
    "intermediate": courses_pb2.COURSE_LEVEL_INTERMEDIATE,
    "advanced": courses_pb2.COURSE_LEVEL_ADVANCED,
}
COURSE_LEVEL_NAMES = {value: name for name, value in COURSE_LEVELS.items()}

COURSE_STATES: dict[str, courses_pb2.CourseState.ValueType] = {
    "draft": courses_pb2.COURSE_STATE_DRAFT,
    "published": courses_pb2.COURSE_STATE_PUBLISHED,
    "archived": courses_pb2.COURSE_STATE_ARCHIVED,
}

ENROLLMENT_STATES: dict[str, learning_pb2.EnrollmentState.ValueType] = {
    "active": learning_pb2.ENROLLMENT_STATE_ACTIVE,
    "withdrawn": learning_pb2.ENROLLMENT_STATE_WITHDRAWN,
    "completed": learning_pb2.ENROLLMENT_STATE_COMPLETED,
}
# A completed enrollment still belongs to the course: its learner may revisit lessons and
# retake quizzes. Only a withdrawn (or missing) enrollment shuts the door.
ENROLLED_STATES = frozenset({"active", "completed"})

CONTENT_KINDS = ("article", "video", "quiz", "code_exercise")


def course_level(name: str) -> courses_pb2.CourseLevel.ValueType:
    return COURSE_LEVELS.get(name, courses_pb2.COURSE_LEVEL_UNSPECIFIED)


def course_state(name: str) -> courses_pb2.CourseState.ValueType:
    return COURSE_STATES.get(name, courses_pb2.COURSE_STATE_UNSPECIFIED)


def enrollment_state(name: str) -> learning_pb2.EnrollmentState.ValueType:
    return ENROLLMENT_STATES.get(name, learning_pb2.ENROLLMENT_STATE_UNSPECIFIED)


def course_name(course_id: Id) -> str:
    return f"courses/{course_id}"


def lesson_name(course_id: Id, lesson_id: Id) -> str:
    return f"courses/{course_id}/lessons/{lesson_id}"


def enrollment_name(course_id: Id, user_id: Id) -> str:
    return f"courses/{course_id}/enrollments/{user_id}"


def user_name(user_id: Id) -> str:
    return f"users/{user_id}"


def is_course_staff(principal: Principal | None, owner_id: Id) -> bool:
    """Course staff: its owner and every admin."""
    return principal is not None and (principal.is_admin or principal.user_text == str(owner_id))


def answers_in(content: Mapping[str, Any]) -> dict[str, list[int]]:
    """The correct choices by question id of a stored quiz's full content."""
    return {
        str(q["id"]): list(q.get("correct_choice_indexes", []))
        for q in content.get("questions", [])
    }


def fill_lesson_content(
    message: courses_pb2.Lesson,
    content_type: str,
    content: Mapping[str, Any],
    answers: Mapping[str, Sequence[int]],
) -> None:
    """Sets the `content` oneof of `message` from stored content. Quiz questions get their
    correct choices from `answers` (by question id): pass `{}` to keep them from a student."""
    if content_type == "article":
        message.article.markdown = content["markdown"]
    elif content_type == "video":
        message.video.url = content["url"]
        message.video.duration_seconds = content["duration_seconds"]
    elif content_type == "quiz":
        message.quiz.pass_threshold_percent = content["pass_threshold_percent"]
        # Quizzes stored before attempts were limited have no such key: unlimited.
        message.quiz.max_attempts = content.get("max_attempts", 0)
        message.quiz.questions.extend(
            courses_pb2.QuizQuestion(
                id=q["id"],
                prompt=q["prompt"],
                choices=q["choices"],
                correct_choice_indexes=answers.get(q["id"], []),
            )
            for q in content["questions"]
        )
    elif content_type == "code_exercise":
        message.code_exercise.language = content["language"]
        message.code_exercise.prompt = content["prompt"]
        message.code_exercise.starter_code = content["starter_code"]
