"""ProgressService: the dashboard, one course's progress and the progress watch stream."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from learnflow.server import Backend
from learnflow.v1 import learning_pb2
from tests.commands_support import article, enroll, learning, published_course, quiz_lesson
from tests.read_support import complete, progress
from tests.support import Caller, field_violations


async def test_dashboard_lists_courses_with_progress_most_recent_activity_first(
    channel: grpc.aio.Channel, instructor: Caller, caller: Caller
) -> None:
    first, lessons = await published_course(instructor, lessons=[article(), article()])
    second, _ = await published_course(instructor)
    await enroll(caller, first.id)
    await enroll(caller, second.id)
    token = await complete(caller, first.id, lessons[0].id)  # first is now the most recent
    reply = await progress(channel).ListMyEnrollments(
        learning_pb2.ListMyEnrollmentsRequest(), metadata=caller.metadata(token)
    )
    assert [p.course_id for p in reply.enrollments] == [first.id, second.id]
    top = reply.enrollments[0]
    assert top.course_title == first.title
    assert (top.lesson_count, top.percent_complete) == (2, 50)
    assert list(top.completed_lesson_ids) == [lessons[0].id]
    assert top.state == learning_pb2.ENROLLMENT_STATE_ACTIVE
    assert top.last_activity_time.seconds > 0


async def test_dashboard_pages_and_other_users_see_nothing(
    channel: grpc.aio.Channel, instructor: Caller, caller: Caller
) -> None:
    token = ""
    enrolled: list[str] = []
    for _ in range(5):
        course, _ = await published_course(instructor)
        token = (await enroll(caller, course.id)).consistency_token
        enrolled.append(course.id)
    stub = progress(channel)
    seen: list[str] = []
    page_token = ""
    while True:
        reply = await stub.ListMyEnrollments(
            learning_pb2.ListMyEnrollmentsRequest(page_size=2, page_token=page_token),
            metadata=caller.metadata(token),
        )
        assert len(reply.enrollments) <= 2
        seen += [p.course_id for p in reply.enrollments]
        page_token = reply.next_page_token
        if not page_token:
            break
    assert seen == enrolled[::-1]
    stranger = await Caller.register(channel)
    empty = await stub.ListMyEnrollments(
        learning_pb2.ListMyEnrollmentsRequest(), metadata=stranger.metadata(token)
    )
    assert list(empty.enrollments) == []
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListMyEnrollments(
            learning_pb2.ListMyEnrollmentsRequest(page_token=reply.next_page_token or "x!"),
            metadata=caller.metadata(),
        )
    assert "page_token" in field_violations(err.value)


async def test_course_progress_tracks_completions_quizzes_withdrawal(
    channel: grpc.aio.Channel, instructor: Caller, caller: Caller
) -> None:
    course, lessons = await published_course(
        instructor, lessons=[article(), quiz_lesson(threshold=100)]
    )
    stub = progress(channel)
    request = learning_pb2.GetCourseProgressRequest(course_id=course.id)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetCourseProgress(request, metadata=caller.metadata())
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    await enroll(caller, course.id)
    attempt = await learning(channel).CreateQuizAttempt(
        learning_pb2.CreateQuizAttemptRequest(
            course_id=course.id,
            lesson_id=lessons[1].id,
            answers=[learning_pb2.QuizAnswer(question_id="q1", choice_indexes=[1])],
        ),
        metadata=caller.metadata(),
    )
    got = (
        await stub.GetCourseProgress(request, metadata=caller.metadata(attempt.consistency_token))
    ).progress
    assert dict(got.quiz_best_scores) == {lessons[1].id: attempt.best_score}
    assert attempt.best_score == 50
    assert got.percent_complete == 0
    token = await complete(caller, course.id, lessons[0].id)
    got = (await stub.GetCourseProgress(request, metadata=caller.metadata(token))).progress
    assert (got.percent_complete, list(got.completed_lesson_ids)) == (50, [lessons[0].id])
    withdrawn = await learning(channel).WithdrawEnrollment(
        learning_pb2.WithdrawEnrollmentRequest(course_id=course.id), metadata=caller.metadata()
    )
    got = (
        await stub.GetCourseProgress(request, metadata=caller.metadata(withdrawn.consistency_token))
    ).progress
    assert got.state == learning_pb2.ENROLLMENT_STATE_WITHDRAWN


async def test_completing_every_lesson_completes_the_enrollment(
    channel: grpc.aio.Channel, instructor: Caller, caller: Caller
) -> None:
    course, lessons = await published_course(instructor, lessons=[article(), article()])
    await enroll(caller, course.id)
    await complete(caller, course.id, lessons[0].id)
    token = await complete(caller, course.id, lessons[1].id)
    got = (
        await progress(channel).GetCourseProgress(
            learning_pb2.GetCourseProgressRequest(course_id=course.id),
            metadata=caller.metadata(token),
        )
    ).progress
    assert (got.state, got.percent_complete) == (learning_pb2.ENROLLMENT_STATE_COMPLETED, 100)


async def test_watch_pushes_the_current_state_then_each_change(
    channel: grpc.aio.Channel,
    instructor: Caller,
    caller: Caller,
    backend: Backend,
    postgres_url: str,
) -> None:
    course, lessons = await published_course(instructor, lessons=[article(), article(), article()])
    enrolled = await enroll(caller, course.id)
    await backend.store.wait_for(enrolled.consistency_token, 10)
    call = progress(channel).WatchCourseProgress(
        learning_pb2.WatchCourseProgressRequest(course_id=course.id),
        metadata=caller.metadata(),
    )
    stream = call.__aiter__()
    first = await asyncio.wait_for(stream.__anext__(), 5)
    assert first.progress.percent_complete == 0
    for done, lesson in enumerate(lessons, start=1):
        await complete(caller, course.id, lesson.id)
        update = await asyncio.wait_for(stream.__anext__(), 5)
        assert len(update.progress.completed_lesson_ids) == done
    assert update.progress.state == learning_pb2.ENROLLMENT_STATE_COMPLETED
    call.cancel()


async def test_watch_of_a_course_not_enrolled_in_is_not_found(
    channel: grpc.aio.Channel, instructor: Caller, caller: Caller
) -> None:
    course, _ = await published_course(instructor)
    call = progress(channel).WatchCourseProgress(
        learning_pb2.WatchCourseProgressRequest(course_id=course.id),
        metadata=caller.metadata(),
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in call:
            pass
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
