"""Learning commands against the real server and PostgreSQL: enrollments (enroll, withdraw,
re-enroll, refusals) and progress (completing lessons, quiz attempts graded on the server,
completion of the whole enrollment).

As in test_commands_courses.py, a refused command writes nothing at all (`fails(code, pg)`):
refusals are not state changes, so they leave no audit row either.
"""

from __future__ import annotations

import datetime as dt
import uuid

import grpc
from google.protobuf import timestamp_pb2
from google.rpc import error_details_pb2

from learnflow.v1 import courses_pb2, learning_pb2
from tests.commands_support import (
    Pg,
    add_lesson,
    article,
    courses,
    enroll,
    fails,
    learning,
    new_course,
    published_course,
    quiz_lesson,
)
from tests.support import Caller, field_violations, rich_status


def ts(value: dt.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def precondition(error: grpc.aio.AioRpcError) -> tuple[str, str]:
    """(type, subject) of the single PreconditionFailure violation."""
    for detail in rich_status(error).details:
        failure = error_details_pb2.PreconditionFailure()
        if detail.Unpack(failure):
            [violation] = failure.violations
            return violation.type, violation.subject
    raise AssertionError("no PreconditionFailure detail")


async def withdraw(who: Caller, course_id: str) -> learning_pb2.WithdrawEnrollmentResponse:
    return await learning(who.channel).WithdrawEnrollment(
        learning_pb2.WithdrawEnrollmentRequest(course_id=course_id), metadata=who.metadata()
    )


async def complete(
    who: Caller, course_id: str, lesson_id: str
) -> learning_pb2.CompleteLessonResponse:
    return await learning(who.channel).CompleteLesson(
        learning_pb2.CompleteLessonRequest(course_id=course_id, lesson_id=lesson_id),
        metadata=who.metadata(),
    )


async def attempt(
    who: Caller, course_id: str, lesson_id: str, answers: dict[str, list[int]]
) -> learning_pb2.CreateQuizAttemptResponse:
    return await learning(who.channel).CreateQuizAttempt(
        learning_pb2.CreateQuizAttemptRequest(
            course_id=course_id,
            lesson_id=lesson_id,
            answers=[
                learning_pb2.QuizAnswer(question_id=qid, choice_indexes=choices)
                for qid, choices in answers.items()
            ],
        ),
        metadata=who.metadata(),
    )


async def enrollment_state(pg: Pg, course_id: str, user_id: str) -> str | None:
    state: str | None = await pg.value(
        "SELECT state FROM enrollments WHERE course_id = %s AND user_id = %s", course_id, user_id
    )
    return state


async def active_count(pg: Pg, course_id: str) -> int:
    count: int = await pg.value(
        "SELECT active_enrollment_count FROM courses WHERE id = %s", course_id
    )
    return count


# ---------------------------------------------------------------------------- enrollments


async def test_enroll_withdraw_and_re_enroll(instructor: Caller, caller: Caller, pg: Pg) -> None:
    course, _ = await published_course(instructor)
    name = f"courses/{course.id}/enrollments/{caller.user_id}"

    reply = await enroll(caller, course.id)
    assert reply.enrollment.state == learning_pb2.ENROLLMENT_STATE_ACTIVE
    assert reply.enrollment.user_id == caller.user_id and reply.consistency_token
    assert await enrollment_state(pg, course.id, caller.user_id) == "active"
    assert await active_count(pg, course.id) == 1
    aggregate = f"{course.id}:{caller.user_id}"
    [(event_type, payload)] = await pg.events(aggregate)
    assert (event_type, payload["state"], payload["active_enrollment_count"]) == (
        "enrollment.activated",
        "active",
        1,
    )

    async with fails(grpc.StatusCode.ALREADY_EXISTS, pg):
        await enroll(caller, course.id)

    left = await withdraw(caller, course.id)
    assert left.enrollment.state == learning_pb2.ENROLLMENT_STATE_WITHDRAWN
    assert await enrollment_state(pg, course.id, caller.user_id) == "withdrawn"
    assert await active_count(pg, course.id) == 0
    async with fails(grpc.StatusCode.FAILED_PRECONDITION, pg) as err:
        await withdraw(caller, course.id)
    assert precondition(err.value) == ("ENROLLMENT_STATE", name)

    back = await enroll(caller, course.id)
    assert back.enrollment.state == learning_pb2.ENROLLMENT_STATE_ACTIVE
    # Re-enrolling reactivates the one row (user, course); it does not add another.
    assert (
        await pg.value(
            "SELECT count(*) FROM enrollments WHERE course_id = %s AND user_id = %s",
            course.id,
            caller.user_id,
        )
        == 1
    )
    assert await active_count(pg, course.id) == 1
    assert [a for a, _, _ in await pg.audit(name)] == [
        "enrollment.enroll",
        "enrollment.withdraw",
        "enrollment.enroll",
    ]
    reactivated = await pg.value(
        "SELECT details->>'reactivated' FROM audit_log WHERE resource = %s ORDER BY id DESC",
        name,
    )
    assert reactivated == "true"
    assert [t for t, _ in await pg.events(aggregate)] == [
        "enrollment.activated",
        "enrollment.withdrawn",
        "enrollment.activated",
    ]
    counts = [p["active_enrollment_count"] for _, p in await pg.events(course.id)][-3:]
    assert counts == [1, 0, 1]


async def test_withdrawing_without_an_enrollment_is_not_found(
    instructor: Caller, caller: Caller, pg: Pg
) -> None:
    course, _ = await published_course(instructor)
    async with fails(grpc.StatusCode.NOT_FOUND, pg):
        await withdraw(caller, course.id)


async def test_draft_courses_refuse_enrollment(instructor: Caller, caller: Caller, pg: Pg) -> None:
    draft = await new_course(instructor)
    await add_lesson(instructor, draft.id)
    # Its staff see the draft, and are told why they cannot enroll.
    async with fails(grpc.StatusCode.FAILED_PRECONDITION, pg) as err:
        await enroll(instructor, draft.id)
    assert precondition(err.value) == ("COURSE_STATE", f"courses/{draft.id}")
    assert "published" in (err.value.details() or "")
    # To everybody else someone's draft is indistinguishable from a missing course (the
    # team's rule, tests/test_role_matrix.py): NOT_FOUND, never a hint that it exists.
    async with fails(grpc.StatusCode.NOT_FOUND, pg):
        await enroll(caller, draft.id)


async def test_archived_courses_refuse_enrollment(
    instructor: Caller, caller: Caller, pg: Pg
) -> None:
    course, _ = await published_course(instructor)
    await courses(instructor.channel).ArchiveCourse(
        courses_pb2.ArchiveCourseRequest(course_id=course.id), metadata=instructor.metadata()
    )
    async with fails(grpc.StatusCode.FAILED_PRECONDITION, pg) as err:
        await enroll(caller, course.id)
    assert precondition(err.value) == ("COURSE_STATE", f"courses/{course.id}")
    assert "archived" in (err.value.details() or "")


async def test_enrollment_window_is_enforced(instructor: Caller, caller: Caller, pg: Pg) -> None:
    now = dt.datetime.now(dt.UTC)
    closed, _ = await published_course(
        instructor,
        enrollment_open_time=ts(now - dt.timedelta(days=2)),
        enrollment_close_time=ts(now - dt.timedelta(days=1)),
    )
    async with fails(grpc.StatusCode.FAILED_PRECONDITION, pg) as err:
        await enroll(caller, closed.id)
    assert precondition(err.value)[0] == "ENROLLMENT_WINDOW"
    assert "closed" in (err.value.details() or "")

    not_yet, _ = await published_course(
        instructor, enrollment_open_time=ts(now + dt.timedelta(days=1))
    )
    async with fails(grpc.StatusCode.FAILED_PRECONDITION, pg) as err:
        await enroll(caller, not_yet.id)
    assert precondition(err.value)[0] == "ENROLLMENT_WINDOW"
    assert "opens" in (err.value.details() or "")

    open_now, _ = await published_course(
        instructor,
        enrollment_open_time=ts(now - dt.timedelta(days=1)),
        enrollment_close_time=ts(now + dt.timedelta(days=1)),
    )
    assert (await enroll(caller, open_now.id)).enrollment.state == 1


async def test_a_full_course_refuses_until_a_seat_frees(
    channel: grpc.aio.Channel, instructor: Caller, pg: Pg
) -> None:
    course, _ = await published_course(instructor, capacity=2)
    first, second, third = [await Caller.register(channel) for _ in range(3)]
    await enroll(first, course.id)
    await enroll(second, course.id)
    async with fails(grpc.StatusCode.FAILED_PRECONDITION, pg) as err:
        await enroll(third, course.id)
    assert precondition(err.value)[0] == "CAPACITY"
    assert "full" in (err.value.details() or "")
    await withdraw(first, course.id)
    await enroll(third, course.id)
    assert await active_count(pg, course.id) == 2
    # The withdrawn learner cannot take their seat back while the course is full.
    async with fails(grpc.StatusCode.FAILED_PRECONDITION, pg):
        await enroll(first, course.id)


async def test_unknown_or_malformed_course(caller: Caller, pg: Pg) -> None:
    async with fails(grpc.StatusCode.NOT_FOUND, pg):
        await enroll(caller, str(uuid.uuid4()))
    async with fails(grpc.StatusCode.INVALID_ARGUMENT, pg) as err:
        await enroll(caller, "nope")
    assert set(field_violations(err.value)) == {"course_id"}


# ---------------------------------------------------------------------------- progress


async def test_completing_every_lesson_completes_the_enrollment(
    instructor: Caller, caller: Caller, pg: Pg
) -> None:
    course, [one, two] = await published_course(instructor, lessons=[article("1"), article("2")])
    await enroll(caller, course.id)
    aggregate = f"{course.id}:{caller.user_id}"

    first = await complete(caller, course.id, one.id)
    assert first.enrollment.state == learning_pb2.ENROLLMENT_STATE_ACTIVE
    [(_, payload)] = await pg.events(aggregate, "progress.lesson_completed")
    assert payload["completed_lesson_ids"] == [one.id] and payload["lesson_count"] == 2
    assert ("lesson.complete", "success", caller.user_id) in await pg.audit(
        f"courses/{course.id}/lessons/{one.id}"
    )

    # Completing it again is accepted and writes nothing.
    async with pg.unchanged():
        again = await complete(caller, course.id, one.id)
    assert again.enrollment.state == learning_pb2.ENROLLMENT_STATE_ACTIVE

    last = await complete(caller, course.id, two.id)
    assert last.enrollment.state == learning_pb2.ENROLLMENT_STATE_COMPLETED
    assert await enrollment_state(pg, course.id, caller.user_id) == "completed"
    assert await pg.value(
        "SELECT completed_at IS NOT NULL FROM enrollments WHERE course_id = %s AND user_id = %s",
        course.id,
        caller.user_id,
    )
    assert await active_count(pg, course.id) == 0  # a completed enrollment holds no seat
    [(_, done)] = await pg.events(aggregate, "enrollment.completed")
    assert done["state"] == "completed" and done["completed_at"]
    assert [t for t, _ in await pg.events(aggregate)] == [
        "enrollment.activated",
        "progress.lesson_completed",
        "progress.lesson_completed",
        "enrollment.completed",
        "certificate.issued",  # in the same transaction as the completion
    ]
    assert ("enrollment.complete", "success", caller.user_id) in await pg.audit(
        f"courses/{course.id}/enrollments/{caller.user_id}"
    )
    # Completed: no re-enrollment, no withdrawal, but lessons stay open to revisit.
    async with fails(grpc.StatusCode.ALREADY_EXISTS, pg):
        await enroll(caller, course.id)
    async with fails(grpc.StatusCode.FAILED_PRECONDITION, pg):
        await withdraw(caller, course.id)
    async with pg.unchanged():
        await complete(caller, course.id, one.id)


async def test_progress_needs_an_enrollment(instructor: Caller, caller: Caller, pg: Pg) -> None:
    course, [lesson, quiz] = await published_course(instructor, lessons=[article(), quiz_lesson()])
    async with fails(grpc.StatusCode.FAILED_PRECONDITION, pg) as err:
        await complete(caller, course.id, lesson.id)
    assert precondition(err.value) == ("ENROLLMENT", f"courses/{course.id}")
    async with fails(grpc.StatusCode.FAILED_PRECONDITION, pg):
        await attempt(caller, course.id, quiz.id, {"q1": [1], "q2": [0, 2]})
    # Withdrawn is not enrolled either.
    await enroll(caller, course.id)
    await withdraw(caller, course.id)
    async with fails(grpc.StatusCode.FAILED_PRECONDITION, pg):
        await complete(caller, course.id, lesson.id)
    async with fails(grpc.StatusCode.FAILED_PRECONDITION, pg):
        await attempt(caller, course.id, quiz.id, {"q1": [1], "q2": [0, 2]})


async def test_unknown_lesson_is_not_found(instructor: Caller, caller: Caller, pg: Pg) -> None:
    course, _ = await published_course(instructor)
    _, [elsewhere] = await published_course(instructor)
    await enroll(caller, course.id)
    async with fails(grpc.StatusCode.NOT_FOUND, pg):
        await complete(caller, course.id, str(uuid.uuid4()))
    async with fails(grpc.StatusCode.NOT_FOUND, pg):
        await complete(caller, course.id, elsewhere.id)  # a lesson of another course
    async with fails(grpc.StatusCode.INVALID_ARGUMENT, pg) as err:
        await complete(caller, "x", "y")
    assert set(field_violations(err.value)) == {"course_id", "lesson_id"}


async def test_quiz_attempts_are_graded_on_the_server(
    instructor: Caller, caller: Caller, pg: Pg
) -> None:
    # Two questions, threshold 70: one right answer is 50% (failed), both are 100%.
    course, [quiz, rest] = await published_course(
        instructor, lessons=[quiz_lesson(threshold=70), article()]
    )
    await enroll(caller, course.id)

    none = await attempt(caller, course.id, quiz.id, {})
    assert (none.score, none.passed, none.best_score) == (0, False, 0)
    half = await attempt(caller, course.id, quiz.id, {"q1": [1], "q2": [0]})  # q2 incomplete
    assert (half.score, half.passed, half.best_score) == (50, False, 50)
    assert not await pg.rows(
        "SELECT 1 FROM lesson_completions WHERE user_id = %s AND lesson_id = %s",
        caller.user_id,
        quiz.id,
    )
    # A quiz lesson is completed by passing it, not by marking it complete.
    async with fails(grpc.StatusCode.FAILED_PRECONDITION, pg) as err:
        await complete(caller, course.id, quiz.id)
    assert precondition(err.value)[0] == "QUIZ_NOT_PASSED"
    assert "70%" in (err.value.details() or "")

    full = await attempt(caller, course.id, quiz.id, {"q2": [2, 0], "q1": [1]})
    assert (full.score, full.passed, full.best_score) == (100, True, 100)
    worse = await attempt(caller, course.id, quiz.id, {"q1": [0], "q2": [0, 2]})
    assert (worse.score, worse.passed, worse.best_score) == (50, False, 100)  # best is kept

    rows = await pg.rows(
        "SELECT score, passed FROM quiz_attempts WHERE user_id = %s AND lesson_id = %s"
        " ORDER BY created_at",
        caller.user_id,
        quiz.id,
    )
    assert rows == [(0, False), (50, False), (100, True), (50, False)]
    aggregate = f"{course.id}:{caller.user_id}"
    attempted = await pg.events(aggregate, "progress.quiz_attempted")
    assert [(p["score"], p["best_score"]) for _, p in attempted] == [
        (0, 0),
        (50, 50),
        (100, 100),
        (50, 100),
    ]
    # Passing completed the quiz lesson once; the failed retake did not undo it.
    completed = await pg.events(aggregate, "progress.lesson_completed")
    assert [p["lesson_id"] for _, p in completed] == [quiz.id]
    async with pg.unchanged():
        await complete(caller, course.id, quiz.id)  # already complete: accepted, no write
    done = await complete(caller, course.id, rest.id)
    assert done.enrollment.state == learning_pb2.ENROLLMENT_STATE_COMPLETED
    assert await pg.events(aggregate, "enrollment.completed")


async def test_passing_the_last_quiz_completes_the_enrollment(
    instructor: Caller, caller: Caller, pg: Pg
) -> None:
    course, [quiz] = await published_course(instructor, lessons=[quiz_lesson(threshold=50)])
    await enroll(caller, course.id)
    passed = await attempt(caller, course.id, quiz.id, {"q1": [1]})
    assert (passed.score, passed.passed) == (50, True)
    assert await enrollment_state(pg, course.id, caller.user_id) == "completed"
    assert await pg.events(f"{course.id}:{caller.user_id}", "enrollment.completed")


async def test_invalid_quiz_answers_name_the_field(
    instructor: Caller, caller: Caller, pg: Pg
) -> None:
    course, [quiz, text] = await published_course(instructor, lessons=[quiz_lesson(), article()])
    await enroll(caller, course.id)
    stub = learning(caller.channel)

    async def send(*answers: learning_pb2.QuizAnswer, lesson_id: str = quiz.id) -> None:
        await stub.CreateQuizAttempt(
            learning_pb2.CreateQuizAttemptRequest(
                course_id=course.id, lesson_id=lesson_id, answers=answers
            ),
            metadata=caller.metadata(),
        )

    async with fails(grpc.StatusCode.INVALID_ARGUMENT, pg) as err:
        await send(
            learning_pb2.QuizAnswer(question_id="", choice_indexes=[0]),
            learning_pb2.QuizAnswer(question_id="q1", choice_indexes=[1]),
            learning_pb2.QuizAnswer(question_id="q1", choice_indexes=[0]),
        )
    assert set(field_violations(err.value)) == {"answers[0].question_id", "answers[2].question_id"}
    async with fails(grpc.StatusCode.INVALID_ARGUMENT, pg) as err:
        await send(
            learning_pb2.QuizAnswer(question_id="q1", choice_indexes=[2]),
            learning_pb2.QuizAnswer(question_id="q9", choice_indexes=[0]),
        )
    assert set(field_violations(err.value)) == {
        "answers[0].choice_indexes",
        "answers[1].question_id",
    }
    async with fails(grpc.StatusCode.INVALID_ARGUMENT, pg) as err:
        await send(learning_pb2.QuizAnswer(question_id="q2", choice_indexes=[-1]))
    assert set(field_violations(err.value)) == {"answers[0].choice_indexes"}
    async with fails(grpc.StatusCode.FAILED_PRECONDITION, pg) as err:
        await send(lesson_id=text.id)
    assert precondition(err.value)[0] == "LESSON_TYPE"


async def test_a_learner_left_with_every_remaining_lesson_done_can_complete(
    instructor: Caller, caller: Caller, pg: Pg
) -> None:
    course, [one, two, three] = await published_course(
        instructor, lessons=[article("1"), article("2"), article("3")]
    )
    await enroll(caller, course.id)
    await complete(caller, course.id, one.id)
    await complete(caller, course.id, two.id)
    # The one lesson the learner had not done is removed from the course.
    await courses(instructor.channel).DeleteLesson(
        courses_pb2.DeleteLessonRequest(course_id=course.id, lesson_id=three.id),
        metadata=instructor.metadata(),
    )
    assert await enrollment_state(pg, course.id, caller.user_id) == "active"
    # Completing a done lesson again is how they finish: not stuck one lesson short.
    reply = await complete(caller, course.id, one.id)
    assert reply.enrollment.state == learning_pb2.ENROLLMENT_STATE_COMPLETED
    assert await enrollment_state(pg, course.id, caller.user_id) == "completed"
    aggregate = f"{course.id}:{caller.user_id}"
    assert len(await pg.events(aggregate, "enrollment.completed")) == 1
    assert len(await pg.events(aggregate, "progress.lesson_completed")) == 2  # no duplicate
    assert await active_count(pg, course.id) == 0
