"""Learning commands: enrollments (enroll, withdraw) and progress (complete a lesson, quiz
attempts graded on the server).

Locks, always taken in this order so that no two commands wait on each other in a cycle:
the caller's enrollment row first, then the course row. The course row lock serialises every
change of `active_enrollment_count`, which is how capacity holds under concurrent enrollment
(the CHECK constraint on `courses` is the backstop, never the mechanism).
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from learnflow.commands.course_records import (
    course_payload,
    load_course,
    load_lesson,
    lock_course_row,
    update_course,
)
from learnflow.commands.requests import caller, parse_ids
from learnflow.commands.rules import answer_violations, grade, require_enrollable
from learnflow.context import Ctx
from learnflow.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
)
from learnflow.events import (
    CERTIFICATE_ISSUED,
    COURSE_COUNTS_CHANGED,
    ENROLLMENT_ACTIVATED,
    ENROLLMENT_COMPLETED,
    ENROLLMENT_WITHDRAWN,
    LESSON_COMPLETED,
    QUIZ_ATTEMPTED,
    CertificatePayload,
    EnrollmentPayload,
    LessonCompletedPayload,
    QuizAttemptedPayload,
)
from learnflow.security.rate_limits import RateLimiter
from learnflow.storage import tables
from learnflow.storage.unit_of_work import Database, UnitOfWork
from learnflow.v1 import learning_pb2, learning_pb2_grpc
from learnflow.values import iso, parse_uuid, timestamp
from learnflow.vocabulary import (
    ENROLLED_STATES,
    course_name,
    enrollment_name,
    enrollment_state,
    lesson_name,
)


def enrollment_message(row: Any) -> learning_pb2.Enrollment:
    return learning_pb2.Enrollment(
        course_id=str(row.course_id),
        user_id=str(row.user_id),
        state=enrollment_state(row.state),
        enroll_time=timestamp(row.enrolled_at),
    )


def enrollment_payload(row: Any, active_enrollment_count: int) -> EnrollmentPayload:
    return {
        "course_id": str(row.course_id),
        "user_id": str(row.user_id),
        "state": row.state,
        "enrolled_at": row.enrolled_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
        "completed_at": iso(row.completed_at),
        "active_enrollment_count": active_enrollment_count,
    }


async def lock_enrollment(conn: AsyncConnection, course_id: uuid.UUID, user_id: uuid.UUID) -> Any:
    return (
        await conn.execute(
            select(tables.enrollments)
            .where(
                tables.enrollments.c.course_id == course_id,
                tables.enrollments.c.user_id == user_id,
            )
            .with_for_update()
        )
    ).first()


def require_enrolled(enrollment: Any, course_id: uuid.UUID) -> None:
    if enrollment is None or enrollment.state not in ENROLLED_STATES:
        raise FailedPrecondition(
            "ENROLLMENT",
            course_name(course_id),
            "enroll in the course first: only enrolled learners make progress in it",
        )


async def _change_count(uow: UnitOfWork, course_id: uuid.UUID, delta: int) -> Any:
    return await update_course(
        uow.conn,
        course_id,
        active_enrollment_count=tables.courses.c.active_enrollment_count + delta,
    )


_MISSING_LESSONS = text(
    "SELECT count(*) FROM lessons l WHERE l.course_id = :c AND NOT EXISTS ("
    " SELECT 1 FROM lesson_completions lc"
    " WHERE lc.user_id = :u AND lc.course_id = :c AND lc.lesson_id = l.id)"
)


async def _lesson_completed(
    uow: UnitOfWork, enrollment: Any, lesson_id: uuid.UUID, completed_at: dt.datetime
) -> bool:
    """Audit and announce a new completion with the learner's full set of completed lessons;
    whether that set is now every lesson of the course."""
    course_id, user_id = enrollment.course_id, enrollment.user_id
    lessons = tables.lessons
    done = tables.lesson_completions
    rows = await uow.conn.execute(
        select(lessons.c.id, done.c.lesson_id.is_not(None).label("done"))
        .select_from(
            lessons.outerjoin(
                done,
                (done.c.lesson_id == lessons.c.id)
                & (done.c.user_id == user_id)
                & (done.c.course_id == course_id),
            )
        )
        .where(lessons.c.course_id == course_id)
        .order_by(lessons.c.position)
    )
    outline = [(str(row.id), bool(row.done)) for row in rows]
    completed_ids = [lesson for lesson, finished in outline if finished]
    await uow.audit("lesson.complete", lesson_name(course_id, lesson_id))
    payload: LessonCompletedPayload = {
        "user_id": str(user_id),
        "course_id": str(course_id),
        "lesson_id": str(lesson_id),
        "completed_at": completed_at.isoformat(),
        "completed_lesson_ids": completed_ids,
        "lesson_count": len(outline),
    }
    await uow.emit(LESSON_COMPLETED, _aggregate(enrollment), payload)
    return len(completed_ids) == len(outline)


async def record_completion(uow: UnitOfWork, enrollment: Any, lesson_id: uuid.UUID) -> Any:
    """Mark `lesson_id` complete for the enrollment's user (once) and complete the enrollment
    when no lesson is left. Returns the enrollment row after it; writes nothing when the lesson
    was already complete and lessons remain. The caller holds the enrollment row lock.

    An active enrollment whose lessons are all complete already (the one lesson left undone
    was deleted, or the learner withdrew and re-enrolled) completes on any completion call,
    so that nobody is stuck one lesson short of a course that has no such lesson any more.
    """
    course_id, user_id = enrollment.course_id, enrollment.user_id
    completed_at = (
        await uow.conn.execute(
            pg_insert(tables.lesson_completions)
            .values(user_id=user_id, course_id=course_id, lesson_id=lesson_id)
            .on_conflict_do_nothing()
            .returning(tables.lesson_completions.c.completed_at)
        )
    ).scalar()
    if completed_at is not None:
        all_done = await _lesson_completed(uow, enrollment, lesson_id, completed_at)
    else:  # nothing new; written to only if the enrollment completes below
        missing = (
            await uow.conn.execute(_MISSING_LESSONS, {"c": course_id, "u": user_id})
        ).scalar()
        all_done = not missing
    if enrollment.state != "active" or not all_done:
        return enrollment
    # Every lesson is done. Take the course lock (lessons change only under it) and look
    # again, then complete the enrollment: it stops counting as an active one.
    await lock_course_row(uow.conn, course_id)
    missing = (await uow.conn.execute(_MISSING_LESSONS, {"c": course_id, "u": user_id})).scalar()
    if missing:
        return enrollment
    enrollment = (
        await uow.conn.execute(
            update(tables.enrollments)
            .where(
                tables.enrollments.c.course_id == course_id,
                tables.enrollments.c.user_id == user_id,
            )
            .values(state="completed", completed_at=func.now(), updated_at=func.now())
            .returning(*tables.enrollments.c)
        )
    ).one()
    course = await _change_count(uow, course_id, -1)
    await uow.audit_and_emit(
        "enrollment.complete",
        enrollment_name(course_id, user_id),
        ENROLLMENT_COMPLETED,
        _aggregate(enrollment),
        enrollment_payload(enrollment, course.active_enrollment_count),
    )
    await uow.emit(COURSE_COUNTS_CHANGED, course_id, course_payload(course))
    await issue_certificate(uow, enrollment, course)
    return enrollment


def new_certificate_id() -> str:
    """128 random bits, URL-safe: 22 characters nobody can guess or enumerate."""
    return secrets.token_urlsafe(16)


async def issue_certificate(uow: UnitOfWork, enrollment: Any, course: Any) -> None:
    """The completion certificate of a just-completed enrollment (at most one per learner and
    course: completion is final), with the names as they are now."""
    learner_name = (
        await uow.conn.execute(
            select(tables.users.c.display_name).where(tables.users.c.id == enrollment.user_id)
        )
    ).scalar_one()
    row = (
        await uow.conn.execute(
            pg_insert(tables.certificates)
            .values(
                id=new_certificate_id(),
                user_id=enrollment.user_id,
                course_id=enrollment.course_id,
                learner_name=learner_name,
                course_title=course.title,
                instructor_name=course.owner_name,
                completed_at=enrollment.completed_at,
            )
            .on_conflict_do_nothing(constraint="certificates_enrollment")
            .returning(*tables.certificates.c)
        )
    ).first()
    if row is None:  # issued before: nothing new
        return
    await uow.audit(
        "certificate.issue",
        f"certificates/{row.id}",
        details={"course_id": str(row.course_id), "user_id": str(row.user_id)},
    )
    payload: CertificatePayload = {
        "id": row.id,
        "user_id": str(row.user_id),
        "course_id": str(row.course_id),
        "learner_name": row.learner_name,
        "course_title": row.course_title,
        "instructor_name": row.instructor_name,
        "completed_at": row.completed_at.isoformat(),
        "issued_at": row.issued_at.isoformat(),
    }
    await uow.emit(CERTIFICATE_ISSUED, _aggregate(enrollment), payload)


async def _passed_quiz(conn: AsyncConnection, user_id: uuid.UUID, lesson_id: uuid.UUID) -> bool:
    passed = await conn.execute(
        select(tables.quiz_attempts.c.id)
        .where(
            tables.quiz_attempts.c.user_id == user_id,
            tables.quiz_attempts.c.lesson_id == lesson_id,
            tables.quiz_attempts.c.passed,
        )
        .limit(1)
    )
    return passed.first() is not None


async def require_attempt_left(conn: AsyncConnection, lesson: Any, user_id: uuid.UUID) -> None:
    """Refuses a graded attempt once the learner has used the quiz's `max_attempts` (0, or
    absent in quizzes stored before the limit existed: unlimited). The caller holds the
    enrollment row lock, which serialises the learner's attempts."""
    limit = lesson.content.get("max_attempts", 0)
    if not limit:
        return
    used = (
        await conn.execute(
            select(func.count()).where(
                tables.quiz_attempts.c.user_id == user_id,
                tables.quiz_attempts.c.lesson_id == lesson.id,
            )
        )
    ).scalar_one()
    if used >= limit:
        raise FailedPrecondition(
            "ATTEMPTS",
            lesson_name(lesson.course_id, lesson.id),
            f"every attempt at this quiz is used ({used} of {limit})",
        )


def _aggregate(enrollment: Any) -> str:
    return f"{enrollment.course_id}:{enrollment.user_id}"


class LearningCommands(learning_pb2_grpc.LearningServiceServicer):
    def __init__(self, db: Database, rate_limiter: RateLimiter) -> None:
        self.db = db
        self.rate_limiter = rate_limiter

    async def EnrollInCourse(
        self, request: learning_pb2.EnrollInCourseRequest, context: Ctx = None
    ) -> learning_pb2.EnrollInCourseResponse:
        principal = caller()
        course_id = parse_uuid(request.course_id, "course_id")
        user_id = principal.user_id

        async def enroll(uow: UnitOfWork) -> learning_pb2.EnrollInCourseResponse:
            existing = await lock_enrollment(uow.conn, course_id, user_id)
            course = await load_course(uow.conn, course_id, principal, lock=True)
            if existing is not None and existing.state in ENROLLED_STATES:
                raise AlreadyExists(
                    "enrollment",
                    enrollment_name(course_id, user_id),
                    "you are already enrolled in this course"
                    if existing.state == "active"
                    else "you have already completed this course",
                )
            require_enrollable(course, dt.datetime.now(dt.UTC))
            enrollments = tables.enrollments
            enrollment: Any
            if existing is not None:
                enrollment = (
                    await uow.conn.execute(
                        update(enrollments)
                        .where(
                            enrollments.c.course_id == course_id, enrollments.c.user_id == user_id
                        )
                        .values(
                            state="active",
                            enrolled_at=func.now(),
                            updated_at=func.now(),
                            completed_at=None,
                        )
                        .returning(*enrollments.c)
                    )
                ).one()
            else:
                enrollment = (
                    await uow.conn.execute(
                        pg_insert(enrollments)
                        .values(course_id=course_id, user_id=user_id, state="active")
                        .on_conflict_do_nothing()
                        .returning(*enrollments.c)
                    )
                ).first()
                if enrollment is None:  # a concurrent enrollment of the same user won
                    raise AlreadyExists(
                        "enrollment",
                        enrollment_name(course_id, user_id),
                        "you are already enrolled in this course",
                    )
            course = await _change_count(uow, course_id, +1)
            await uow.audit_and_emit(
                "enrollment.enroll",
                enrollment_name(course_id, user_id),
                ENROLLMENT_ACTIVATED,
                _aggregate(enrollment),
                enrollment_payload(enrollment, course.active_enrollment_count),
                details={"reactivated": existing is not None},
            )
            await uow.emit(COURSE_COUNTS_CHANGED, course_id, course_payload(course))
            return learning_pb2.EnrollInCourseResponse(
                enrollment=enrollment_message(enrollment),
                consistency_token=uow.consistency_token,
            )

        return await self.db.run_command(
            request, request.request_id, learning_pb2.EnrollInCourseResponse, enroll
        )

    async def WithdrawEnrollment(
        self, request: learning_pb2.WithdrawEnrollmentRequest, context: Ctx = None
    ) -> learning_pb2.WithdrawEnrollmentResponse:
        principal = caller()
        course_id = parse_uuid(request.course_id, "course_id")
        user_id = principal.user_id

        async def withdraw(uow: UnitOfWork) -> learning_pb2.WithdrawEnrollmentResponse:
            existing = await lock_enrollment(uow.conn, course_id, user_id)
            await load_course(uow.conn, course_id, principal, lock=True)
            name = enrollment_name(course_id, user_id)
            if existing is None:
                raise NotFound("enrollment", name)
            if existing.state != "active":
                raise FailedPrecondition(
                    "ENROLLMENT_STATE",
                    name,
                    f"only an active enrollment can be withdrawn; this one is {existing.state}",
                )
            enrollments = tables.enrollments
            enrollment = (
                await uow.conn.execute(
                    update(enrollments)
                    .where(enrollments.c.course_id == course_id, enrollments.c.user_id == user_id)
                    .values(state="withdrawn", updated_at=func.now())
                    .returning(*enrollments.c)
                )
            ).one()
            course = await _change_count(uow, course_id, -1)
            await uow.audit_and_emit(
                "enrollment.withdraw",
                name,
                ENROLLMENT_WITHDRAWN,
                _aggregate(enrollment),
                enrollment_payload(enrollment, course.active_enrollment_count),
            )
            await uow.emit(COURSE_COUNTS_CHANGED, course_id, course_payload(course))
            return learning_pb2.WithdrawEnrollmentResponse(
                enrollment=enrollment_message(enrollment),
                consistency_token=uow.consistency_token,
            )

        return await self.db.run_command(
            request, request.request_id, learning_pb2.WithdrawEnrollmentResponse, withdraw
        )

    async def CompleteLesson(
        self, request: learning_pb2.CompleteLessonRequest, context: Ctx = None
    ) -> learning_pb2.CompleteLessonResponse:
        principal = caller()
        course_id, lesson_id = parse_ids(
            ("course_id", request.course_id), ("lesson_id", request.lesson_id)
        )

        async def complete(uow: UnitOfWork) -> learning_pb2.CompleteLessonResponse:
            enrollment = await lock_enrollment(uow.conn, course_id, principal.user_id)
            await load_course(uow.conn, course_id, principal)
            lesson = await load_lesson(uow.conn, course_id, lesson_id)
            require_enrolled(enrollment, course_id)
            if lesson.content_type == "quiz" and not await _passed_quiz(
                uow.conn, principal.user_id, lesson_id
            ):
                # Otherwise the pass threshold would be a suggestion: a quiz lesson is
                # completed by passing it (CreateQuizAttempt), which records the completion.
                raise FailedPrecondition(
                    "QUIZ_NOT_PASSED",
                    lesson_name(course_id, lesson_id),
                    "a quiz lesson is completed by passing the quiz: submit an attempt that "
                    f"scores at least {lesson.content['pass_threshold_percent']}%",
                )
            # Completing a completed lesson again changes nothing and writes nothing.
            enrollment = await record_completion(uow, enrollment, lesson_id)
            return learning_pb2.CompleteLessonResponse(
                enrollment=enrollment_message(enrollment),
                consistency_token=uow.consistency_token,
            )

        return await self.db.run_command(
            request, request.request_id, learning_pb2.CompleteLessonResponse, complete
        )

    async def CreateQuizAttempt(
        self, request: learning_pb2.CreateQuizAttemptRequest, context: Ctx = None
    ) -> learning_pb2.CreateQuizAttemptResponse:
        principal = caller()
        course_id, lesson_id = parse_ids(
            ("course_id", request.course_id), ("lesson_id", request.lesson_id)
        )
        violations: list[FieldViolation] = []
        seen: set[str] = set()
        for i, answer in enumerate(request.answers):
            if not answer.question_id:
                violations.append(FieldViolation(f"answers[{i}].question_id", "is required"))
            elif answer.question_id in seen:
                violations.append(
                    FieldViolation(f"answers[{i}].question_id", "question answered twice")
                )
            seen.add(answer.question_id)
        if violations:
            raise InvalidArgument(violations)
        # Besides the quiz's own maximum: graded attempts come at a human pace.
        await self.rate_limiter.hit_quiz_attempt(str(principal.user_id), str(lesson_id))

        async def attempt(uow: UnitOfWork) -> learning_pb2.CreateQuizAttemptResponse:
            enrollment = await lock_enrollment(uow.conn, course_id, principal.user_id)
            await load_course(uow.conn, course_id, principal)
            lesson = await load_lesson(uow.conn, course_id, lesson_id)
            require_enrolled(enrollment, course_id)
            if lesson.content_type != "quiz":
                raise FailedPrecondition(
                    "LESSON_TYPE",
                    lesson_name(course_id, lesson_id),
                    f"only quiz lessons take attempts; this one is a {lesson.content_type}",
                )
            # Counted under the enrollment row lock: concurrent attempts cannot exceed it.
            await require_attempt_left(uow.conn, lesson, principal.user_id)
            bad = answer_violations(lesson.content, request.answers)
            if bad:
                raise InvalidArgument(bad)
            graded = grade(lesson.content, request.answers)
            score, passed = graded.score, graded.passed
            attempt_id = uuid.uuid4()
            attempted_at = (
                await uow.conn.execute(
                    insert(tables.quiz_attempts)
                    .values(
                        id=attempt_id,
                        user_id=principal.user_id,
                        course_id=course_id,
                        lesson_id=lesson_id,
                        score=score,
                        passed=passed,
                        answers=[
                            {
                                "question_id": a.question_id,
                                "choice_indexes": sorted(set(a.choice_indexes)),
                            }
                            for a in request.answers
                        ],
                    )
                    .returning(tables.quiz_attempts.c.created_at)
                )
            ).scalar_one()
            best = (
                await uow.conn.execute(
                    select(func.max(tables.quiz_attempts.c.score)).where(
                        tables.quiz_attempts.c.user_id == principal.user_id,
                        tables.quiz_attempts.c.lesson_id == lesson_id,
                    )
                )
            ).scalar_one()
            await uow.audit(
                "quiz.attempt",
                lesson_name(course_id, lesson_id),
                details={"attempt_id": str(attempt_id), "score": score, "passed": passed},
            )
            payload: QuizAttemptedPayload = {
                "user_id": str(principal.user_id),
                "course_id": str(course_id),
                "lesson_id": str(lesson_id),
                "attempt_id": str(attempt_id),
                "score": score,
                "passed": passed,
                "best_score": best,
                "attempted_at": attempted_at.isoformat(),
            }
            await uow.emit(QUIZ_ATTEMPTED, _aggregate(enrollment), payload)
            if passed:
                await record_completion(uow, enrollment, lesson_id)
            return learning_pb2.CreateQuizAttemptResponse(
                score=score,
                passed=passed,
                best_score=best,
                consistency_token=uow.consistency_token,
            )

        return await self.db.run_command(
            request, request.request_id, learning_pb2.CreateQuizAttemptResponse, attempt
        )
