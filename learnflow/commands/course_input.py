"""Course and lesson requests turned into validated column values: every rule about what a
field may hold, with a field violation naming the request path when it does not. Pure: no
I/O, so every rule has a fast unit test (tests/unit/test_course_input.py)."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from learnflow.errors import FieldViolation, InvalidArgument
from learnflow.v1 import courses_pb2
from learnflow.vocabulary import CONTENT_KINDS, COURSE_LEVEL_NAMES

TAG_RE = re.compile(r"[a-z0-9-]{1,30}")
# Question ids reach read models and answers: a closed alphabet, so none is ever taken for a
# path (`a.b`) or an operator (`$x`) by a document store, a URL or a log parser.
QUESTION_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_TAGS = 10
COURSE_CREATE_FIELDS = (
    "title",
    "summary",
    "tags",
    "level",
    "capacity",
    "enrollment_open_time",
    "enrollment_close_time",
)
COURSE_MASK_PATHS = frozenset(COURSE_CREATE_FIELDS)
LESSON_CONTENT_PATHS = frozenset({"content", *CONTENT_KINDS})
LESSON_MASK_PATHS = frozenset({"title", "position"}) | LESSON_CONTENT_PATHS
MAX_MARKDOWN = 100_000
MAX_VIDEO_SECONDS = 86_400
MAX_QUESTIONS = 50
DEFAULT_PASS_THRESHOLD = 70
# Graded attempts per learner and quiz: 0 is unlimited. A small number keeps a learner from
# finding the answers one question at a time.
MAX_QUIZ_ATTEMPTS = 100


def _timestamp_field(
    course: courses_pb2.Course, field: str, violations: list[FieldViolation]
) -> dt.datetime | None:
    if not course.HasField(field):  # type: ignore[arg-type]
        return None
    try:
        return getattr(course, field).ToDatetime(tzinfo=dt.UTC)  # type: ignore[no-any-return]
    except (ValueError, OverflowError):
        violations.append(FieldViolation(f"course.{field}", "is not a valid timestamp"))
        return None


def course_values(
    course: courses_pb2.Course, fields: Iterable[str]
) -> tuple[dict[str, Any], list[FieldViolation]]:
    """Validated column values for the named `Course` fields, and the field violations."""
    names = set(fields)
    values: dict[str, Any] = {}
    violations: list[FieldViolation] = []
    if "title" in names:
        title = course.title.strip()
        if not 3 <= len(title) <= 120:
            violations.append(FieldViolation("course.title", "must be 3 to 120 characters"))
        values["title"] = title
    if "summary" in names:
        summary = course.summary.strip()
        if len(summary) > 2000:
            violations.append(FieldViolation("course.summary", "must be at most 2000 characters"))
        values["summary"] = summary
    if "tags" in names:
        tags = list(course.tags)
        if len(tags) > MAX_TAGS:
            violations.append(FieldViolation("course.tags", f"at most {MAX_TAGS} tags"))
        seen: set[str] = set()
        for i, tag in enumerate(tags):
            if not TAG_RE.fullmatch(tag):
                violations.append(
                    FieldViolation(
                        f"course.tags[{i}]", "must be 1 to 30 characters of a-z, 0-9 and '-'"
                    )
                )
            elif tag in seen:
                violations.append(FieldViolation(f"course.tags[{i}]", "duplicate tag"))
            seen.add(tag)
        values["tags"] = tags
    if "level" in names:
        level = COURSE_LEVEL_NAMES.get(course.level)
        if level is None:
            violations.append(FieldViolation("course.level", "unknown course level"))
        values["level"] = level
    if "capacity" in names:
        if course.capacity < 0:
            violations.append(
                FieldViolation("course.capacity", "must be 0 (unlimited) or a positive number")
            )
        values["capacity"] = course.capacity
    if "enrollment_open_time" in names:
        values["enrollment_open_at"] = _timestamp_field(course, "enrollment_open_time", violations)
    if "enrollment_close_time" in names:
        values["enrollment_close_at"] = _timestamp_field(
            course, "enrollment_close_time", violations
        )
    return values, violations


def window_violations(
    open_at: dt.datetime | None, close_at: dt.datetime | None
) -> list[FieldViolation]:
    if open_at is not None and close_at is not None and close_at <= open_at:
        return [
            FieldViolation("course.enrollment_close_time", "must be after enrollment_open_time")
        ]
    return []


def mask_paths(mask_paths: Iterable[str], allowed: frozenset[str]) -> list[str]:
    paths = list(mask_paths)
    if not paths:
        raise InvalidArgument(
            [
                FieldViolation(
                    "update_mask", f"must name the fields to update: {', '.join(sorted(allowed))}"
                )
            ]
        )
    unknown = sorted({p for p in paths if p not in allowed})
    if unknown:
        raise InvalidArgument(
            [
                FieldViolation(
                    "update_mask",
                    f"unknown or read-only field(s) {', '.join(unknown)}; "
                    f"updatable: {', '.join(sorted(allowed))}",
                )
            ]
        )
    return paths


def lesson_title(lesson: courses_pb2.Lesson, violations: list[FieldViolation]) -> str:
    title = lesson.title.strip()
    if not 1 <= len(title) <= 120:
        violations.append(FieldViolation("lesson.title", "must be 1 to 120 characters"))
    return title


def _article(article: courses_pb2.Article, violations: list[FieldViolation]) -> dict[str, Any]:
    if not article.markdown.strip() or len(article.markdown) > MAX_MARKDOWN:
        violations.append(
            FieldViolation("lesson.article.markdown", "must be 1 to 100,000 characters")
        )
    return {"markdown": article.markdown}


def is_https_url(url: str, max_length: int = 2048) -> bool:
    """An absolute https URL with a host, no whitespace, at most `max_length` characters."""
    if len(url) > max_length or any(c.isspace() for c in url):
        return False
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:  # e.g. a malformed IPv6 host or port
        return False
    return parts.scheme == "https" and bool(hostname)


def _video(video: courses_pb2.Video, violations: list[FieldViolation]) -> dict[str, Any]:
    url = video.url.strip()
    if not is_https_url(url):
        violations.append(
            FieldViolation("lesson.video.url", "must be an https URL of at most 2048 characters")
        )
    if not 1 <= video.duration_seconds <= MAX_VIDEO_SECONDS:
        violations.append(
            FieldViolation("lesson.video.duration_seconds", "must be 1 to 86,400 seconds")
        )
    return {"url": url, "duration_seconds": video.duration_seconds}


def _quiz(quiz: courses_pb2.Quiz, violations: list[FieldViolation]) -> dict[str, Any]:
    if not 1 <= len(quiz.questions) <= MAX_QUESTIONS:
        violations.append(FieldViolation("lesson.quiz.questions", "must have 1 to 50 questions"))
    given_ids = {q.id.strip() for q in quiz.questions if q.id.strip()}
    seen: set[str] = set()
    questions: list[dict[str, Any]] = []
    for i, question in enumerate(quiz.questions):
        path = f"lesson.quiz.questions[{i}]"
        question_id = question.id.strip()
        if question_id:
            if not QUESTION_ID_RE.fullmatch(question_id):
                violations.append(
                    FieldViolation(
                        f"{path}.id", "must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -"
                    )
                )
            elif question_id in seen:
                violations.append(FieldViolation(f"{path}.id", "duplicate question id"))
            seen.add(question_id)
        else:
            question_id = uuid.uuid4().hex[:12]
            while question_id in given_ids or question_id in seen:
                question_id = uuid.uuid4().hex[:12]
            seen.add(question_id)
        prompt = question.prompt.strip()
        if not 1 <= len(prompt) <= 2000:
            violations.append(FieldViolation(f"{path}.prompt", "must be 1 to 2000 characters"))
        choices = list(question.choices)
        if not 2 <= len(choices) <= 10:
            violations.append(FieldViolation(f"{path}.choices", "must have 2 to 10 choices"))
        for j, choice in enumerate(choices):
            if not choice.strip() or len(choice) > 500:
                violations.append(
                    FieldViolation(f"{path}.choices[{j}]", "must be 1 to 500 characters")
                )
        correct = sorted(set(question.correct_choice_indexes))
        if not correct:
            violations.append(
                FieldViolation(f"{path}.correct_choice_indexes", "at least one is required")
            )
        elif any(not 0 <= k < len(choices) for k in correct):
            violations.append(
                FieldViolation(
                    f"{path}.correct_choice_indexes",
                    f"must be indexes into choices (0 to {max(len(choices) - 1, 0)})",
                )
            )
        questions.append(
            {
                "id": question_id,
                "prompt": prompt,
                "choices": choices,
                "correct_choice_indexes": correct,
            }
        )
    threshold = quiz.pass_threshold_percent or DEFAULT_PASS_THRESHOLD
    if not 1 <= threshold <= 100:
        violations.append(
            FieldViolation("lesson.quiz.pass_threshold_percent", "must be 1 to 100 (70 when unset)")
        )
    if not 0 <= quiz.max_attempts <= MAX_QUIZ_ATTEMPTS:
        violations.append(
            FieldViolation(
                "lesson.quiz.max_attempts",
                f"must be 0 (unlimited) to {MAX_QUIZ_ATTEMPTS}",
            )
        )
    return {
        "questions": questions,
        "pass_threshold_percent": threshold,
        "max_attempts": quiz.max_attempts,
    }


def _code_exercise(
    exercise: courses_pb2.CodeExercise, violations: list[FieldViolation]
) -> dict[str, Any]:
    language = exercise.language.strip()
    if not 1 <= len(language) <= 40:
        violations.append(
            FieldViolation("lesson.code_exercise.language", "must be 1 to 40 characters")
        )
    if not exercise.prompt.strip() or len(exercise.prompt) > MAX_MARKDOWN:
        violations.append(
            FieldViolation("lesson.code_exercise.prompt", "must be 1 to 100,000 characters")
        )
    if len(exercise.starter_code) > MAX_MARKDOWN:
        violations.append(
            FieldViolation(
                "lesson.code_exercise.starter_code", "must be at most 100,000 characters"
            )
        )
    return {
        "language": language,
        "prompt": exercise.prompt,
        "starter_code": exercise.starter_code,
    }


def lesson_content(
    lesson: courses_pb2.Lesson, violations: list[FieldViolation]
) -> tuple[str, dict[str, Any]]:
    """The content type and its JSON document (field names as in the proto)."""
    kind = lesson.WhichOneof("content")
    if kind == "article":
        return kind, _article(lesson.article, violations)
    if kind == "video":
        return kind, _video(lesson.video, violations)
    if kind == "quiz":
        return kind, _quiz(lesson.quiz, violations)
    if kind == "code_exercise":
        return kind, _code_exercise(lesson.code_exercise, violations)
    violations.append(
        FieldViolation("lesson.content", "one of article, video, quiz or code_exercise is required")
    )
    return "", {}
