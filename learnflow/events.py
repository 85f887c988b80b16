"""The event catalogue: every domain event the command side appends to the outbox and the
projections consume, each a named `EventType` constant with its typed payload. Commands emit
them (`UnitOfWork.emit(COURSE_CREATED, id, payload)`, checked by mypy against the payload
type) and projections subscribe to them (`@on(COURSE_CREATED, ...)`); nowhere else is an event
name written.

Payloads are JSON (`SCHEMA_VERSION`, stored with every event) and *state-carrying*: they hold
the resulting state of what changed, so a projection can `$set` it and replaying is
idempotent. Timestamps are ISO-8601 strings with offset; ids are UUID strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, NotRequired, TypedDict, TypeVar

SCHEMA_VERSION = 1


class UserPayload(TypedDict):
    """user.registered, user.role_changed, user.disabled, user.enabled,
    user.profile_changed, user.email_verified. `bio` and `avatar_url` are absent from events
    written before profiles existed (read them as ""), `email_verified` from those written
    before email verification (read it as False)."""

    id: str
    email: str
    display_name: str
    role: str  # student | instructor | admin
    disabled: bool
    created_at: str
    bio: NotRequired[str]
    avatar_url: NotRequired[str]
    email_verified: NotRequired[bool]


class SessionPayload(TypedDict):
    """session.created, session.refreshed, session.revoked, session.family_revoked,
    session.password_changed"""

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
    """course.created, course.updated, course.published, course.archived,
    course.unpublished (published -> draft), course.restored (archived -> draft), and
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


class CourseDeletedPayload(TypedDict):
    """course.deleted: a draft that never had a learner is gone, with its lessons."""

    id: str
    owner_id: str
    lesson_ids: list[str]
    deleted_at: str


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


class CertificatePayload(TypedDict):
    """certificate.issued: once per completed enrollment; never changes afterwards."""

    id: str  # public, unguessable
    user_id: str
    course_id: str
    learner_name: str
    course_title: str
    instructor_name: str
    completed_at: str
    issued_at: str


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


PayloadT = TypeVar("PayloadT")


@dataclass(frozen=True)
class EventType(Generic[PayloadT]):
    """One kind of event: its name in the outbox, the aggregate it belongs to, and (as the type
    parameter) the payload it carries."""

    name: str
    aggregate_type: str

    def __str__(self) -> str:
        return self.name


USER_REGISTERED: EventType[UserPayload] = EventType("user.registered", "user")
USER_ROLE_CHANGED: EventType[UserPayload] = EventType("user.role_changed", "user")
USER_DISABLED: EventType[UserPayload] = EventType("user.disabled", "user")
USER_ENABLED: EventType[UserPayload] = EventType("user.enabled", "user")
USER_PROFILE_CHANGED: EventType[UserPayload] = EventType("user.profile_changed", "user")
USER_EMAIL_VERIFIED: EventType[UserPayload] = EventType("user.email_verified", "user")
# Someone registered with the email of this existing account (the owner was told by mail).
# Written so that such a registration appends as many events as a new one does.
USER_REGISTRATION_REPEATED: EventType[SessionPayload] = EventType(
    "user.registration_repeated", "user"
)
# Every session of the user ended by a password change (no read model follows sessions).
SESSION_PASSWORD_CHANGED: EventType[SessionPayload] = EventType("session.password_changed", "user")
SESSION_CREATED: EventType[SessionPayload] = EventType("session.created", "user")
SESSION_REFRESHED: EventType[SessionPayload] = EventType("session.refreshed", "user")
SESSION_REVOKED: EventType[SessionPayload] = EventType("session.revoked", "user")
SESSION_FAMILY_REVOKED: EventType[SessionPayload] = EventType("session.family_revoked", "user")
AUDIT_RECORDED: EventType[AuditPayload] = EventType("audit.recorded", "audit")
COURSE_CREATED: EventType[CoursePayload] = EventType("course.created", "course")
COURSE_UPDATED: EventType[CoursePayload] = EventType("course.updated", "course")
COURSE_PUBLISHED: EventType[CoursePayload] = EventType("course.published", "course")
COURSE_ARCHIVED: EventType[CoursePayload] = EventType("course.archived", "course")
COURSE_COUNTS_CHANGED: EventType[CoursePayload] = EventType("course.counts_changed", "course")
COURSE_UNPUBLISHED: EventType[CoursePayload] = EventType("course.unpublished", "course")
COURSE_RESTORED: EventType[CoursePayload] = EventType("course.restored", "course")
COURSE_DELETED: EventType[CourseDeletedPayload] = EventType("course.deleted", "course")
LESSON_CREATED: EventType[LessonPayload] = EventType("lesson.created", "lesson")
LESSON_UPDATED: EventType[LessonPayload] = EventType("lesson.updated", "lesson")
LESSON_DELETED: EventType[LessonDeletedPayload] = EventType("lesson.deleted", "lesson")
ENROLLMENT_ACTIVATED: EventType[EnrollmentPayload] = EventType("enrollment.activated", "enrollment")
ENROLLMENT_WITHDRAWN: EventType[EnrollmentPayload] = EventType("enrollment.withdrawn", "enrollment")
ENROLLMENT_COMPLETED: EventType[EnrollmentPayload] = EventType("enrollment.completed", "enrollment")
LESSON_COMPLETED: EventType[LessonCompletedPayload] = EventType(
    "progress.lesson_completed", "enrollment"
)
QUIZ_ATTEMPTED: EventType[QuizAttemptedPayload] = EventType("progress.quiz_attempted", "enrollment")
CERTIFICATE_ISSUED: EventType[CertificatePayload] = EventType("certificate.issued", "enrollment")
COMMENT_CREATED: EventType[CommentPayload] = EventType("comment.created", "comment")
COMMENT_UPDATED: EventType[CommentPayload] = EventType("comment.updated", "comment")
COMMENT_DELETED: EventType[CommentPayload] = EventType("comment.deleted", "comment")

# Every event that carries a course's state (the catalog and progress both follow them).
COURSE_EVENTS = (
    COURSE_CREATED,
    COURSE_UPDATED,
    COURSE_PUBLISHED,
    COURSE_ARCHIVED,
    COURSE_COUNTS_CHANGED,
    COURSE_UNPUBLISHED,
    COURSE_RESTORED,
)
USER_EVENTS = (
    USER_REGISTERED,
    USER_ROLE_CHANGED,
    USER_DISABLED,
    USER_ENABLED,
    USER_PROFILE_CHANGED,
    USER_EMAIL_VERIFIED,
)
ENROLLMENT_EVENTS = (ENROLLMENT_ACTIVATED, ENROLLMENT_WITHDRAWN, ENROLLMENT_COMPLETED)
COMMENT_EVENTS = (COMMENT_CREATED, COMMENT_UPDATED, COMMENT_DELETED)
