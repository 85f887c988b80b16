"""The event catalogue: every domain event the command side appends to the outbox and the
projections consume. Payloads are JSON (schema_version 1) and *state-carrying*: they hold the
resulting state of what changed, so a projection can `$set` it and replaying is idempotent.

Timestamps are ISO-8601 strings with offset; ids are UUID strings.
"""

from __future__ import annotations

from typing import TypedDict

SCHEMA_VERSION = 1


class UserPayload(TypedDict):
    """user.registered, user.role_changed, user.disabled, user.enabled"""

    id: str
    email: str
    display_name: str
    role: str  # student | instructor | admin
    disabled: bool
    created_at: str


class SessionPayload(TypedDict):
    """session.created, session.refreshed, session.revoked, session.family_revoked"""

    user_id: str


class AuditPayload(TypedDict):
    """audit.recorded: one row of the append-only audit log."""

    id: int
    actor_id: str  # "" when anonymous
    action: str
    resource: str
    outcome: str  # success | failure
    request_id: str
    client_address: str
    occurred_at: str


class CoursePayload(TypedDict):
    """course.created, course.updated, course.published, course.archived, and
    course.counts_changed (lesson or enrollment counts moved)."""

    id: str
    owner_id: str
    owner_name: str
    title: str
    slug: str
    summary: str
    tags: list[str]
    level: str  # unspecified | beginner | intermediate | advanced
    state: str  # draft | published | archived
    capacity: int
    enrollment_open_at: str | None
    enrollment_close_at: str | None
    lesson_count: int
    active_enrollment_count: int
    created_at: str
    updated_at: str
    published_at: str | None


class OutlineEntry(TypedDict):
    id: str
    title: str
    position: int
    content_type: str  # article | video | quiz | code_exercise


class LessonPayload(TypedDict):
    """lesson.created, lesson.updated. `content` is the full content including quiz answers
    (the read side stores answers apart from what students see). `outline` is the course's
    whole outline after the change, so positions and prev/next of every lesson can be set."""

    id: str
    course_id: str
    course_title: str
    title: str
    position: int
    content_type: str
    content: dict[str, object]
    created_at: str
    updated_at: str
    outline: list[OutlineEntry]


class LessonDeletedPayload(TypedDict):
    """lesson.deleted"""

    id: str
    course_id: str
    outline: list[OutlineEntry]


class EnrollmentPayload(TypedDict):
    """enrollment.activated (enrolled or re-enrolled), enrollment.withdrawn,
    enrollment.completed"""

    course_id: str
    user_id: str
    state: str  # active | withdrawn | completed
    enrolled_at: str
    updated_at: str
    completed_at: str | None
    active_enrollment_count: int


class LessonCompletedPayload(TypedDict):
    """progress.lesson_completed: the user's full set of completed lessons after it."""

    user_id: str
    course_id: str
    lesson_id: str
    completed_at: str
    completed_lesson_ids: list[str]
    lesson_count: int


class QuizAttemptedPayload(TypedDict):
    """progress.quiz_attempted"""

    user_id: str
    course_id: str
    lesson_id: str
    attempt_id: str
    score: int
    passed: bool
    best_score: int
    attempted_at: str


class CommentPayload(TypedDict):
    """comment.created, comment.updated, comment.deleted (body emptied on delete)."""

    id: str
    course_id: str
    lesson_id: str
    parent_id: str  # "" for a top-level comment
    author_id: str
    author_name: str
    body: str
    deleted: bool
    created_at: str
    updated_at: str
