"""Quiz attempts are bounded, so that a learner cannot find the answers one question at a
time: a per-quiz maximum set by the instructor (0: unlimited), enforced under the enrollment
row lock, and a per-learner rate limit (issue 12, "Low")."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import grpc
import pytest

from learnflow.server import build
from learnflow.settings import Settings
from learnflow.v1 import courses_pb2, learning_pb2, learning_pb2_grpc
from tests.commands_support import (
    Pg,
    add_lesson,
    enroll,
    fails,
    new_course,
    published_course,
    quiz_lesson,
)
from tests.read_support import catalog
from tests.support import Caller, field_violations
from tests.test_commands_learning import attempt, precondition
from tests.test_rate_limits import assert_exhausted
from tests.test_rate_limits import attempt as outcome

WRONG = {"q1": [0], "q2": [1]}


def limited_quiz(max_attempts: int, threshold: int = 100) -> courses_pb2.Lesson:
    lesson = quiz_lesson(threshold=threshold)
    lesson.quiz.max_attempts = max_attempts
    return lesson


async def test_attempts_stop_at_the_quizs_maximum(
    instructor: Caller, caller: Caller, pg: Pg
) -> None:
    course, [quiz, unlimited] = await published_course(
        instructor, lessons=[limited_quiz(2), limited_quiz(0)]
    )
    await enroll(caller, course.id)
    for _ in range(2):
        assert not (await attempt(caller, course.id, quiz.id, WRONG)).passed
    async with fails(grpc.StatusCode.FAILED_PRECONDITION, pg) as err:  # and writes nothing
        await attempt(caller, course.id, quiz.id, {"q1": [1], "q2": [0, 2]})
    assert precondition(err.value) == (
        "ATTEMPTS",
        f"courses/{course.id}/lessons/{quiz.id}",
    )
    # 0 is unlimited.
    for _ in range(4):
        await attempt(caller, course.id, unlimited.id, WRONG)


async def test_concurrent_attempts_never_exceed_the_maximum(
    instructor: Caller, caller: Caller, pg: Pg
) -> None:
    course, [quiz] = await published_course(instructor, lessons=[limited_quiz(3)])
    await enroll(caller, course.id)
    results = await asyncio.gather(
        *(attempt(caller, course.id, quiz.id, WRONG) for _ in range(8)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(results) - len(refused) == 3, results
    assert {r.code() for r in refused} == {grpc.StatusCode.FAILED_PRECONDITION}
    stored = await pg.value(
        "SELECT count(*) FROM quiz_attempts WHERE user_id = %s AND lesson_id = %s",
        caller.user_id,
        quiz.id,
    )
    assert stored == 3


@pytest.mark.parametrize("bad", [-1, 101])
async def test_max_attempts_is_0_to_100(instructor: Caller, pg: Pg, bad: int) -> None:
    course = await new_course(instructor)
    async with fails(grpc.StatusCode.INVALID_ARGUMENT, pg) as err:
        await add_lesson(instructor, course.id, limited_quiz(bad))
    assert set(field_violations(err.value)) == {"lesson.quiz.max_attempts"}


async def test_students_are_told_the_maximum(
    channel: grpc.aio.Channel, instructor: Caller, caller: Caller
) -> None:
    course, [quiz] = await published_course(instructor, lessons=[limited_quiz(5)])
    assert quiz.quiz.max_attempts == 5  # the staff's reply
    enrolled = await enroll(caller, course.id)
    seen = (
        await catalog(channel).GetLesson(
            courses_pb2.GetLessonRequest(course_id=course.id, lesson_id=quiz.id),
            metadata=caller.metadata(enrolled.consistency_token),
        )
    ).lesson
    assert seen.quiz.max_attempts == 5
    assert all(not q.correct_choice_indexes for q in seen.quiz.questions)


async def test_attempts_are_rate_limited_per_learner_and_quiz(
    settings: Settings, instructor: Caller, caller: Caller, channel: grpc.aio.Channel
) -> None:
    course, [first, second] = await published_course(
        instructor, lessons=[limited_quiz(0), limited_quiz(0)]
    )
    await enroll(caller, course.id)
    other = await Caller.register(channel)
    await enroll(other, course.id)
    limited = dataclasses.replace(settings, rate_limit_quiz_attempts="3/minute")
    backend = await build(limited, run_projector=False)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{backend.port}") as ch:
            stub = learning_pb2_grpc.LearningServiceStub(ch)

            def send(who: Caller, lesson_id: str) -> Any:
                return stub.CreateQuizAttempt(
                    learning_pb2.CreateQuizAttemptRequest(
                        course_id=course.id,
                        lesson_id=lesson_id,
                        answers=[
                            learning_pb2.QuizAnswer(question_id=q, choice_indexes=c)
                            for q, c in WRONG.items()
                        ],
                    ),
                    metadata=who.metadata(),
                )

            burst = [await outcome(send(caller, first.id)) for _ in range(4)]
            assert [o.code for o in burst[:3]] == [grpc.StatusCode.OK] * 3
            assert_exhausted(burst[3], "quiz-attempt")
            # Another quiz, another learner: budgets of their own.
            assert (await outcome(send(caller, second.id))).code == grpc.StatusCode.OK
            assert (await outcome(send(other, first.id))).code == grpc.StatusCode.OK
    finally:
        await backend.close(grace_s=0.5)
