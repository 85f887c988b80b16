"""The read cache never answers older than a caller's consistency token, for every read model
and on any process; it is filled by reads and invalidated by real commands (issue 13)."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import field_mask_pb2

from learnflow.server import Backend
from learnflow.settings import Settings
from learnflow.v1 import (
    access_pb2,
    courses_pb2,
    discussion_pb2,
    identity_pb2,
    identity_pb2_grpc,
    learning_pb2,
)
from tests.commands_support import courses, enroll, published_course
from tests.read_support import catalog, comment, comment_queries, complete, progress, settle
from tests.server_process import server_process
from tests.support import PASSWORD, Caller


async def test_each_read_model_reads_its_own_writes_through_the_cache(
    backend: Backend, instructor: Caller, caller: Caller, admin: Caller, postgres_url: str
) -> None:
    assert backend.read_cache is not None
    read = catalog(instructor.channel)
    course, lessons = await published_course(instructor)
    await settle(postgres_url, backend.store)

    # Course: fill the cache, change the title, read with the token.
    await read.GetCourse(courses_pb2.GetCourseRequest(course_id=course.id))
    hits = backend.read_cache.hits
    await read.GetCourse(courses_pb2.GetCourseRequest(course_id=course.id))
    assert backend.read_cache.hits == hits + 1  # really cached
    renamed = await courses(instructor.channel).UpdateCourse(
        courses_pb2.UpdateCourseRequest(
            course=courses_pb2.Course(id=course.id, title="Renamed while cached"),
            update_mask=field_mask_pb2.FieldMask(paths=["title"]),
        ),
        metadata=instructor.metadata(),
    )
    got = await read.GetCourse(
        courses_pb2.GetCourseRequest(course_id=course.id),
        metadata=(("x-consistency-token", renamed.consistency_token),),
    )
    assert got.course.title == "Renamed while cached"

    # Outline: a new lesson appears in the cached course's outline.
    added = await courses(instructor.channel).CreateLesson(
        courses_pb2.CreateLessonRequest(
            course_id=course.id,
            lesson=courses_pb2.Lesson(title="Added", article=courses_pb2.Article(markdown="x")),
        ),
        metadata=instructor.metadata(),
    )
    got = await read.GetCourse(
        courses_pb2.GetCourseRequest(course_id=course.id),
        metadata=(("x-consistency-token", added.consistency_token),),
    )
    assert [lesson.title for lesson in got.lessons][-1] == "Added"

    # Lesson: staff read it (cached), then rename it.
    lesson = lessons[0]
    await read.GetLesson(
        courses_pb2.GetLessonRequest(course_id=course.id, lesson_id=lesson.id),
        metadata=instructor.metadata(),
    )
    changed = await courses(instructor.channel).UpdateLesson(
        courses_pb2.UpdateLessonRequest(
            lesson=courses_pb2.Lesson(id=lesson.id, course_id=course.id, title="Lesson, again"),
            update_mask=field_mask_pb2.FieldMask(paths=["title"]),
        ),
        metadata=instructor.metadata(),
    )
    got_lesson = await read.GetLesson(
        courses_pb2.GetLessonRequest(course_id=course.id, lesson_id=lesson.id),
        metadata=instructor.metadata(changed.consistency_token),
    )
    assert got_lesson.lesson.title == "Lesson, again"

    # Dashboard and progress: enrolment, then a completed lesson.
    stub = progress(caller.channel)
    await stub.ListMyEnrollments(
        learning_pb2.ListMyEnrollmentsRequest(), metadata=caller.metadata()
    )
    enrolled = await enroll(caller, course.id)
    dashboard = await stub.ListMyEnrollments(
        learning_pb2.ListMyEnrollmentsRequest(),
        metadata=caller.metadata(enrolled.consistency_token),
    )
    assert course.id in [p.course_id for p in dashboard.enrollments]
    before = await stub.GetCourseProgress(
        learning_pb2.GetCourseProgressRequest(course_id=course.id), metadata=caller.metadata()
    )
    token = await complete(caller, course.id, lesson.id)
    after = await stub.GetCourseProgress(
        learning_pb2.GetCourseProgressRequest(course_id=course.id),
        metadata=caller.metadata(token),
    )
    assert len(after.progress.completed_lesson_ids) == len(before.progress.completed_lesson_ids) + 1

    # Comments: a new one is listed.
    posted = await comment(caller, course.id, lesson.id, "Cached or not?")
    listed = await comment_queries(caller.channel).ListComments(
        discussion_pb2.ListCommentsRequest(course_id=course.id, lesson_id=lesson.id),
        metadata=caller.metadata(posted.consistency_token),
    )
    assert "Cached or not?" in [c.body for c in listed.comments]

    # Profile: a role change shows on the user's own profile.
    profiles = identity_pb2_grpc.ProfileServiceStub(caller.channel)
    await profiles.GetCurrentUser(identity_pb2.GetCurrentUserRequest(), metadata=caller.metadata())
    promoted = await identity_pb2_grpc.IdentityServiceStub(admin.channel).SetUserRole(
        identity_pb2.SetUserRoleRequest(user_id=caller.user_id, role=access_pb2.ROLE_INSTRUCTOR),
        metadata=admin.metadata(),
    )
    session = await identity_pb2_grpc.IdentityServiceStub(caller.channel).CreateSession(
        identity_pb2.CreateSessionRequest(email=caller.user.email, password=PASSWORD)
    )
    me = await profiles.GetCurrentUser(
        identity_pb2.GetCurrentUserRequest(),
        metadata=(
            ("authorization", f"Bearer {session.access_token}"),
            ("x-consistency-token", promoted.consistency_token),
        ),
    )
    assert me.user.role == access_pb2.ROLE_INSTRUCTOR


@pytest.mark.parametrize("pairs", [200])
async def test_writes_read_back_with_their_token_alternating_two_processes(
    settings: Settings, channel: grpc.aio.Channel, instructor: Caller, pairs: int
) -> None:
    """Never stale: the write on one process, the read with its token on the other, then
    the other way round; the read cache of either may hold the previous version."""
    course, _ = await published_course(instructor)
    async with (
        server_process(settings) as other,
        grpc.aio.insecure_channel(other.target) as remote,
    ):
        ends = [channel, remote]
        for i in range(pairs):
            write, read = ends[i % 2], ends[(i + 1) % 2]
            await catalog(read).GetCourse(courses_pb2.GetCourseRequest(course_id=course.id))
            reply = await courses(write).UpdateCourse(
                courses_pb2.UpdateCourseRequest(
                    course=courses_pb2.Course(id=course.id, summary=f"version {i}"),
                    update_mask=field_mask_pb2.FieldMask(paths=["summary"]),
                ),
                metadata=instructor.metadata(),
            )
            got = await catalog(read).GetCourse(
                courses_pb2.GetCourseRequest(course_id=course.id),
                metadata=(("x-consistency-token", reply.consistency_token),),
                timeout=10,
            )
            assert got.course.summary == f"version {i}", i
