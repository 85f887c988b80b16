"""ProgressService: the dashboard, one course's progress and the progress watch stream."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from learnflow.server import Backend
from learnflow.v1 import learning_pb2
from tests.commands_support import (
    article,
    enroll,
    learning,
    new_course,
    published_course,
    quiz_lesson,
)
from tests.read_support import complete, progress, settle
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


# ---------------------------------------------------------------------------- the roster


async def roster(who: Caller, course_id: str, order_by: str = "", size: int = 2) -> list[str]:
    """Every learner's display name on the roster, following page tokens."""
    names: list[str] = []
    token = ""
    while True:
        reply = await progress(who.channel).ListCourseEnrollments(
            learning_pb2.ListCourseEnrollmentsRequest(
                course_id=course_id, order_by=order_by, page_size=size, page_token=token
            ),
            metadata=who.metadata(),
        )
        names += [e.display_name for e in reply.enrollments]
        token = reply.next_page_token
        if not token:
            return names


async def test_the_roster_shows_each_learner_with_progress_in_three_orders(
    channel: grpc.aio.Channel, instructor: Caller, admin: Caller
) -> None:
    course, lessons = await published_course(
        instructor, lessons=[article(), quiz_lesson(), article()]
    )
    zoe = await Caller.register(channel, name="Zoë Zed")
    amy = await Caller.register(channel, name="amy Able")
    bob = await Caller.register(channel, name="Bob Baker")
    for who in (zoe, amy, bob):
        await enroll(who, course.id)
    await complete(zoe, course.id, lessons[0].id)
    await complete(zoe, course.id, lessons[2].id)
    await learning(bob.channel).CreateQuizAttempt(
        learning_pb2.CreateQuizAttemptRequest(
            course_id=course.id,
            lesson_id=lessons[1].id,
            answers=[learning_pb2.QuizAnswer(question_id="q1", choice_indexes=[1])],
        ),
        metadata=bob.metadata(),
    )
    token = await complete(bob, course.id, lessons[0].id)  # bob is the most recent
    reply = await progress(channel).ListCourseEnrollments(
        learning_pb2.ListCourseEnrollmentsRequest(course_id=course.id),
        metadata=instructor.metadata(token),
    )
    by_name = {e.display_name: e for e in reply.enrollments}
    assert list(by_name) == ["amy Able", "Bob Baker", "Zoë Zed"]  # by name, case-insensitive
    bob_entry = by_name["Bob Baker"]
    assert bob_entry.user_id == bob.user_id
    assert bob_entry.state == learning_pb2.ENROLLMENT_STATE_ACTIVE
    assert (bob_entry.percent_complete, bob_entry.completed_lesson_count) == (33, 1)
    assert dict(bob_entry.quiz_best_scores) == {lessons[1].id: 50}
    assert bob_entry.enroll_time.seconds > 0 and bob_entry.last_activity_time.seconds > 0
    assert not by_name["amy Able"].HasField("complete_time")
    assert await roster(instructor, course.id, "percent_complete desc") == [
        "Zoë Zed",
        "Bob Baker",
        "amy Able",
    ]
    assert await roster(admin, course.id, "last_activity_time desc", size=1) == [
        "Bob Baker",
        "Zoë Zed",
        "amy Able",
    ]
    assert await roster(admin, course.id, "display_name desc", size=1) == [
        "Zoë Zed",
        "Bob Baker",
        "amy Able",
    ]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await progress(channel).ListCourseEnrollments(
            learning_pb2.ListCourseEnrollmentsRequest(course_id=course.id, order_by="email"),
            metadata=instructor.metadata(),
        )
    assert "order_by" in field_violations(err.value)


async def test_the_roster_is_for_course_staff_only(
    channel: grpc.aio.Channel, instructor: Caller, postgres_url: str, backend: Backend
) -> None:
    other = await Caller.with_role(channel, postgres_url, "instructor", name="Other")
    course, _ = await published_course(instructor)
    draft = await new_course(instructor)
    await settle(postgres_url, backend.store)
    stub = progress(channel)
    for course_id, code in (
        (course.id, grpc.StatusCode.PERMISSION_DENIED),  # public: refusing reveals nothing
        (draft.id, grpc.StatusCode.NOT_FOUND),  # someone else's draft: as if missing
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListCourseEnrollments(
                learning_pb2.ListCourseEnrollmentsRequest(course_id=course_id),
                metadata=other.metadata(),
            )
        assert err.value.code() == code
    empty = await stub.ListCourseEnrollments(
        learning_pb2.ListCourseEnrollmentsRequest(course_id=draft.id),
        metadata=instructor.metadata(),
    )
    assert list(empty.enrollments) == []
