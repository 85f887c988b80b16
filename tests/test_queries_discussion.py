"""CommentQueryService: threads per lesson, access, pages stable under new comments."""

from __future__ import annotations

import grpc
import pytest

from learnflow.v1 import discussion_pb2, discussion_pb2_grpc
from tests.commands_support import enroll, published_course
from tests.read_support import comment, comment_queries
from tests.support import Caller, field_violations


async def test_threads_oldest_first_with_replies_after_their_parent(
    channel: grpc.aio.Channel, instructor: Caller, caller: Caller
) -> None:
    course, lessons = await published_course(instructor)
    lesson = lessons[0].id
    await enroll(caller, course.id)
    first = (await comment(caller, course.id, lesson, "first thread")).comment
    second = (await comment(instructor, course.id, lesson, "second thread")).comment
    reply = (await comment(instructor, course.id, lesson, "reply", first.id)).comment
    nested = (await comment(caller, course.id, lesson, "reply to reply", reply.id)).comment
    deleted = await discussion_pb2_grpc.DiscussionServiceStub(channel).DeleteComment(
        discussion_pb2.DeleteCommentRequest(
            course_id=course.id, lesson_id=lesson, comment_id=second.id
        ),
        metadata=instructor.metadata(),
    )
    got = await comment_queries(channel).ListComments(
        discussion_pb2.ListCommentsRequest(course_id=course.id, lesson_id=lesson),
        metadata=caller.metadata(deleted.consistency_token),
    )
    assert [c.id for c in got.comments] == [first.id, reply.id, nested.id, second.id]
    assert [c.parent_id for c in got.comments] == ["", first.id, reply.id, ""]
    assert got.comments[0].author_name == "Test User"
    assert got.comments[0].body == "first thread"
    assert got.comments[3].deleted and got.comments[3].body == ""


async def test_comments_only_for_enrolled_users_and_staff(
    channel: grpc.aio.Channel, instructor: Caller, caller: Caller, admin: Caller
) -> None:
    course, lessons = await published_course(instructor)
    posted = await comment(instructor, course.id, lessons[0].id, "welcome")
    request = discussion_pb2.ListCommentsRequest(course_id=course.id, lesson_id=lessons[0].id)
    stub = comment_queries(channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListComments(request, metadata=caller.metadata(posted.consistency_token))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    for who in (instructor, admin):
        got = await stub.ListComments(request, metadata=who.metadata())
        assert [c.body for c in got.comments] == ["welcome"]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListComments(
            discussion_pb2.ListCommentsRequest(course_id=course.id, lesson_id=course.id),
            metadata=admin.metadata(),
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_pages_stable_while_comments_are_added(
    channel: grpc.aio.Channel, instructor: Caller, caller: Caller
) -> None:
    course, lessons = await published_course(instructor)
    lesson = lessons[0].id
    await enroll(caller, course.id)
    original = [(await comment(caller, course.id, lesson, f"c{i}")).comment.id for i in range(5)]
    token = (await comment(caller, course.id, lesson, "c5")).consistency_token
    stub = comment_queries(channel)
    page = await stub.ListComments(
        discussion_pb2.ListCommentsRequest(course_id=course.id, lesson_id=lesson, page_size=2),
        metadata=caller.metadata(token),
    )
    seen = [c.id for c in page.comments]
    # A reply to the first (already seen) thread and a new thread arrive meanwhile.
    await comment(instructor, course.id, lesson, "late reply", original[0])
    late = (await comment(instructor, course.id, lesson, "new thread")).comment
    token = (await comment(caller, course.id, lesson, "newest")).consistency_token
    page_token = page.next_page_token
    while page_token:
        page = await stub.ListComments(
            discussion_pb2.ListCommentsRequest(
                course_id=course.id, lesson_id=lesson, page_size=2, page_token=page_token
            ),
            metadata=caller.metadata(token),
        )
        seen += [c.id for c in page.comments]
        page_token = page.next_page_token
    assert len(seen) == len(set(seen))
    assert seen[:5] == original
    assert late.id in seen
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListComments(
            discussion_pb2.ListCommentsRequest(
                course_id=course.id, lesson_id=lesson, page_token="garbage"
            ),
            metadata=caller.metadata(),
        )
    assert "page_token" in field_violations(err.value)
