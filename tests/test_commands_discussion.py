"""Discussion commands against the real server and PostgreSQL: post, reply, edit and
soft-delete comments; only enrolled learners and course staff post; authors edit their own;
authors and staff delete. A refused command writes nothing (`fails(code, pg)`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf import field_mask_pb2

from learnflow.v1 import discussion_pb2, discussion_pb2_grpc, learning_pb2
from tests.commands_support import (
    Pg,
    add_lesson,
    article,
    enroll,
    fails,
    learning,
    new_course,
    published_course,
)
from tests.support import Caller, field_violations


@dataclass
class Lesson:
    course_id: str
    lesson_id: str
    other_lesson_id: str


@pytest.fixture
async def lesson(instructor: Caller) -> Lesson:
    course, [first, second] = await published_course(
        instructor, lessons=[article("One"), article("Two")]
    )
    return Lesson(course.id, first.id, second.id)


def stub(who: Caller) -> discussion_pb2_grpc.DiscussionServiceAsyncStub:
    return discussion_pb2_grpc.DiscussionServiceStub(who.channel)


async def post(
    who: Caller, at: Lesson, body: str = "A thoughtful remark", parent_id: str = ""
) -> discussion_pb2.Comment:
    reply = await stub(who).CreateComment(
        discussion_pb2.CreateCommentRequest(
            course_id=at.course_id, lesson_id=at.lesson_id, body=body, parent_id=parent_id
        ),
        metadata=who.metadata(),
    )
    assert reply.consistency_token
    return reply.comment


async def edit(
    who: Caller, at: Lesson, comment_id: str, body: str, *paths: str
) -> discussion_pb2.Comment:
    reply = await stub(who).UpdateComment(
        discussion_pb2.UpdateCommentRequest(
            course_id=at.course_id,
            lesson_id=at.lesson_id,
            comment_id=comment_id,
            body=body,
            update_mask=field_mask_pb2.FieldMask(paths=list(paths or ["body"])),
        ),
        metadata=who.metadata(),
    )
    return reply.comment


async def delete(who: Caller, at: Lesson, comment_id: str) -> None:
    await stub(who).DeleteComment(
        discussion_pb2.DeleteCommentRequest(
            course_id=at.course_id, lesson_id=at.lesson_id, comment_id=comment_id
        ),
        metadata=who.metadata(),
    )


def name(at: Lesson, comment_id: str) -> str:
    return f"courses/{at.course_id}/lessons/{at.lesson_id}/comments/{comment_id}"


async def test_enrolled_learner_posts_and_replies_in_threads(
    channel: grpc.aio.Channel, lesson: Lesson, pg: Pg
) -> None:
    ada = await Caller.register(channel, name="Ada")
    bob = await Caller.register(channel, name="Bob")
    await enroll(ada, lesson.course_id)
    await enroll(bob, lesson.course_id)

    top = await post(ada, lesson, "  Why does this work?  ")
    assert top.body == "Why does this work?"
    assert (top.author_id, top.author_name, top.parent_id) == (ada.user_id, "Ada", "")
    assert not top.deleted and top.HasField("create_time")
    reply = await post(bob, lesson, "Because of recursion.", parent_id=top.id)
    nested = await post(ada, lesson, "Thanks!", parent_id=reply.id)
    assert reply.parent_id == top.id and nested.parent_id == reply.id

    rows = await pg.rows(
        "SELECT author_id::text, parent_id::text, body, deleted FROM comments"
        " WHERE lesson_id = %s ORDER BY created_at",
        lesson.lesson_id,
    )
    assert rows == [
        (ada.user_id, None, "Why does this work?", False),
        (bob.user_id, top.id, "Because of recursion.", False),
        (ada.user_id, reply.id, "Thanks!", False),
    ]
    assert await pg.audit(name(lesson, top.id)) == [("comment.create", "success", ada.user_id)]
    [(event_type, payload)] = await pg.events(reply.id)
    assert event_type == "comment.created"
    assert (payload["parent_id"], payload["author_name"], payload["body"]) == (
        top.id,
        "Bob",
        "Because of recursion.",
    )


async def test_course_staff_post_without_enrolling(
    instructor: Caller, admin: Caller, lesson: Lesson
) -> None:
    assert (await post(instructor, lesson)).author_id == instructor.user_id
    assert (await post(admin, lesson)).author_id == admin.user_id


async def test_only_enrolled_learners_and_staff_post(
    channel: grpc.aio.Channel, postgres_url: str, caller: Caller, lesson: Lesson, pg: Pg
) -> None:
    async with fails(grpc.StatusCode.PERMISSION_DENIED, pg):
        await post(caller, lesson)
    other_instructor = await Caller.with_role(channel, postgres_url, "instructor")
    async with fails(grpc.StatusCode.PERMISSION_DENIED, pg):
        await post(other_instructor, lesson)
    await enroll(caller, lesson.course_id)
    await learning(channel).WithdrawEnrollment(
        learning_pb2.WithdrawEnrollmentRequest(course_id=lesson.course_id),
        metadata=caller.metadata(),
    )
    async with fails(grpc.StatusCode.PERMISSION_DENIED, pg):
        await post(caller, lesson)  # withdrawn learners no longer post


async def test_comments_on_someone_elses_draft_are_not_found(
    instructor: Caller, caller: Caller, pg: Pg
) -> None:
    draft = await new_course(instructor)
    added = await add_lesson(instructor, draft.id)
    at = Lesson(draft.id, added.id, "")
    async with fails(grpc.StatusCode.NOT_FOUND, pg):
        await post(caller, at)
    assert (await post(instructor, at)).body  # staff discuss their draft


async def test_unknown_lesson_is_not_found(caller: Caller, lesson: Lesson, pg: Pg) -> None:
    await enroll(caller, lesson.course_id)
    async with fails(grpc.StatusCode.NOT_FOUND, pg):
        await post(caller, Lesson(lesson.course_id, str(uuid.uuid4()), ""))


async def test_invalid_comments_name_every_field(caller: Caller, lesson: Lesson, pg: Pg) -> None:
    await enroll(caller, lesson.course_id)
    async with fails(grpc.StatusCode.INVALID_ARGUMENT, pg) as err:
        await post(caller, lesson, body="   ")
    assert set(field_violations(err.value)) == {"body"}
    async with fails(grpc.StatusCode.INVALID_ARGUMENT, pg) as err:
        await post(caller, lesson, body="x" * 10_001)
    assert set(field_violations(err.value)) == {"body"}
    async with fails(grpc.StatusCode.INVALID_ARGUMENT, pg) as err:
        await post(caller, lesson, body="", parent_id="not-a-uuid")
    assert set(field_violations(err.value)) == {"body", "parent_id"}
    async with fails(grpc.StatusCode.INVALID_ARGUMENT, pg) as err:
        await stub(caller).CreateComment(
            discussion_pb2.CreateCommentRequest(course_id="", lesson_id="x", body="Hello"),
            metadata=caller.metadata(),
        )
    assert set(field_violations(err.value)) == {"course_id", "lesson_id"}
    # A reply must answer a comment of the same lesson.
    elsewhere = await post(caller, Lesson(lesson.course_id, lesson.other_lesson_id, ""))
    async with fails(grpc.StatusCode.INVALID_ARGUMENT, pg) as err:
        await post(caller, lesson, parent_id=elsewhere.id)
    assert set(field_violations(err.value)) == {"parent_id"}
    async with fails(grpc.StatusCode.INVALID_ARGUMENT, pg) as err:
        await post(caller, lesson, parent_id=str(uuid.uuid4()))
    assert set(field_violations(err.value)) == {"parent_id"}


async def test_authors_edit_their_own_comments_only(
    channel: grpc.aio.Channel, instructor: Caller, admin: Caller, lesson: Lesson, pg: Pg
) -> None:
    author = await Caller.register(channel, name="Author")
    other = await Caller.register(channel)
    for who in (author, other):
        await enroll(who, lesson.course_id)
    comment = await post(author, lesson, "First draft of a thought")

    edited = await edit(author, lesson, comment.id, "  Second draft  ")
    assert edited.body == "Second draft" and edited.author_name == "Author"
    assert edited.update_time.ToDatetime() >= comment.update_time.ToDatetime()
    assert await pg.value("SELECT body FROM comments WHERE id = %s", comment.id) == "Second draft"
    assert [a for a, _, _ in await pg.audit(name(lesson, comment.id))] == [
        "comment.create",
        "comment.update",
    ]
    assert [t for t, _ in await pg.events(comment.id)] == ["comment.created", "comment.updated"]

    # Nobody else edits it: not another learner, not the course's staff (they may delete).
    for who in (other, instructor, admin):
        async with fails(grpc.StatusCode.PERMISSION_DENIED, pg):
            await edit(who, lesson, comment.id, "Put words in their mouth")
    async with fails(grpc.StatusCode.INVALID_ARGUMENT, pg) as err:
        await edit(author, lesson, comment.id, "")
    assert set(field_violations(err.value)) == {"body"}
    async with fails(grpc.StatusCode.INVALID_ARGUMENT, pg) as err:
        await edit(author, lesson, comment.id, "ok", "body", "author_id")
    violations = field_violations(err.value)
    assert set(violations) == {"update_mask"} and "author_id" in violations["update_mask"]
    async with fails(grpc.StatusCode.NOT_FOUND, pg):
        await edit(author, lesson, str(uuid.uuid4()), "Nothing here")


async def test_soft_delete_by_author_and_moderation_by_staff(
    channel: grpc.aio.Channel, instructor: Caller, lesson: Lesson, pg: Pg
) -> None:
    author = await Caller.register(channel)
    other = await Caller.register(channel)
    for who in (author, other):
        await enroll(who, lesson.course_id)
    mine = await post(author, lesson, "Regrettable")
    theirs = await post(author, lesson, "Off topic")
    reply = await post(other, lesson, "A reply survives its parent", parent_id=mine.id)

    async with fails(grpc.StatusCode.PERMISSION_DENIED, pg):
        await delete(other, lesson, mine.id)  # a learner does not moderate

    await delete(author, lesson, mine.id)
    # Soft: the row stays (replies keep their parent), flagged deleted; the event hides the body.
    assert await pg.rows("SELECT deleted, body FROM comments WHERE id = %s", mine.id) == [
        (True, "Regrettable")
    ]
    [*_, (event_type, payload)] = await pg.events(mine.id)
    assert (event_type, payload["deleted"], payload["body"]) == ("comment.deleted", True, "")
    assert await pg.value("SELECT parent_id::text FROM comments WHERE id = %s", reply.id) == mine.id
    moderated = await pg.value(
        "SELECT details->>'moderated' FROM audit_log WHERE resource = %s AND action = %s",
        name(lesson, mine.id),
        "comment.delete",
    )
    assert moderated == "false"

    async with fails(grpc.StatusCode.NOT_FOUND, pg):
        await delete(author, lesson, mine.id)  # already gone
    async with fails(grpc.StatusCode.FAILED_PRECONDITION, pg):
        await edit(author, lesson, mine.id, "Resurrected")

    await delete(instructor, lesson, theirs.id)  # the course's owner moderates
    assert await pg.audit(name(lesson, theirs.id)) == [
        ("comment.create", "success", author.user_id),
        ("comment.delete", "success", instructor.user_id),
    ]
    assert (
        await pg.value(
            "SELECT details->>'moderated' FROM audit_log WHERE resource = %s AND action = %s",
            name(lesson, theirs.id),
            "comment.delete",
        )
        == "true"
    )


async def test_an_admin_moderates_any_course(
    caller: Caller, admin: Caller, lesson: Lesson, pg: Pg
) -> None:
    await enroll(caller, lesson.course_id)
    comment = await post(caller, lesson)
    await delete(admin, lesson, comment.id)
    assert await pg.value("SELECT deleted FROM comments WHERE id = %s", comment.id) is True


async def test_the_comment_must_belong_to_the_named_lesson(
    caller: Caller, lesson: Lesson, pg: Pg
) -> None:
    await enroll(caller, lesson.course_id)
    comment = await post(caller, lesson)
    wrong = Lesson(lesson.course_id, lesson.other_lesson_id, "")
    async with fails(grpc.StatusCode.NOT_FOUND, pg):
        await edit(caller, wrong, comment.id, "Moved?")
    async with fails(grpc.StatusCode.NOT_FOUND, pg):
        await delete(caller, wrong, comment.id)
