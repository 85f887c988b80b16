"""Issue 15, learners and admins: profile edits (PATCH /v1/users/me), password change (ends
every other session, returns a new one), the admins' user directory, resume fields and
completion certificates in progress, the public certificate, and a course by its slug."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from learnflow.v1 import (
    access_pb2,
    courses_pb2,
    identity_pb2,
    identity_pb2_grpc,
    learning_pb2,
    learning_pb2_grpc,
)
from tests.commands_support import Pg, article, enroll, new_course, published_course
from tests.read_support import catalog, complete, progress
from tests.support import PASSWORD, Caller, field_violations


def profiles(channel: grpc.aio.Channel) -> identity_pb2_grpc.ProfileServiceAsyncStub:
    return identity_pb2_grpc.ProfileServiceStub(channel)


def ids(channel: grpc.aio.Channel) -> identity_pb2_grpc.IdentityServiceAsyncStub:
    return identity_pb2_grpc.IdentityServiceStub(channel)


async def update_me(
    who: Caller, paths: list[str], **fields: str
) -> identity_pb2.UpdateCurrentUserResponse:
    user = identity_pb2.User()
    for name, value in fields.items():
        setattr(user, name, value)
    return await ids(who.channel).UpdateCurrentUser(
        identity_pb2.UpdateCurrentUserRequest(user=user, update_mask=FieldMask(paths=paths)),
        metadata=who.metadata(),
    )


# ------------------------------------------------------------------------------ profile


async def test_a_user_edits_their_profile_and_reads_it_back(caller: Caller, pg: Pg) -> None:
    reply = await update_me(
        caller,
        ["bio", "avatar_url"],
        bio="  I like proofs.  ",
        avatar_url="https://cdn.example.com/a.png",
        display_name="ignored: not in the mask",
    )
    assert (reply.user.bio, reply.user.avatar_url) == (
        "I like proofs.",
        "https://cdn.example.com/a.png",
    )
    assert reply.user.display_name == caller.user.display_name
    me = await profiles(caller.channel).GetCurrentUser(
        identity_pb2.GetCurrentUserRequest(), metadata=caller.metadata(reply.consistency_token)
    )
    assert (me.user.bio, me.user.avatar_url) == (reply.user.bio, reply.user.avatar_url)
    renamed = await update_me(caller, ["display_name"], display_name="New Name")
    assert renamed.user.display_name == "New Name"
    assert renamed.user.bio == "I like proofs."
    actions = [a for a, *_ in await pg.audit(f"users/{caller.user_id}")]
    assert actions.count("user.profile_change") == 2
    events = await pg.events(caller.user_id, "user.profile_changed")
    assert events[-1][1]["display_name"] == "New Name"
    # The profile change ends no session: the same token still works.
    await profiles(caller.channel).GetCurrentUser(
        identity_pb2.GetCurrentUserRequest(), metadata=caller.metadata()
    )


@pytest.mark.parametrize(
    ("paths", "fields", "field"),
    [
        ([], {}, "update_mask"),
        (["email"], {"email": "x@example.com"}, "update_mask"),
        (["display_name"], {"display_name": "   "}, "user.display_name"),
        (["avatar_url"], {"avatar_url": "http://example.com/a.png"}, "user.avatar_url"),
        (["avatar_url"], {"avatar_url": "https://[bad/a.png"}, "user.avatar_url"),
        (["avatar_url"], {"avatar_url": "javascript:alert(1)"}, "user.avatar_url"),
        (["bio"], {"bio": "x" * 1001}, "bio"),
    ],
)
async def test_bad_profile_edits_are_refused_with_field_violations(
    caller: Caller, pg: Pg, paths: list[str], fields: dict[str, str], field: str
) -> None:
    async with pg.unchanged():
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await update_me(caller, paths, **fields)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert any(field in name for name in field_violations(raised.value))


async def test_an_avatar_can_be_cleared(caller: Caller) -> None:
    await update_me(caller, ["avatar_url"], avatar_url="https://example.com/me.png")
    reply = await update_me(caller, ["avatar_url"], avatar_url="")
    assert reply.user.avatar_url == ""


# ----------------------------------------------------------------------------- password


async def test_changing_the_password_ends_every_other_session(caller: Caller, pg: Pg) -> None:
    stub = ids(caller.channel)
    other = await stub.CreateSession(
        identity_pb2.CreateSessionRequest(email=caller.user.email, password=PASSWORD)
    )
    reply = await stub.ChangePassword(
        identity_pb2.ChangePasswordRequest(
            current_password=PASSWORD, new_password="a-brand-new-password"
        ),
        metadata=caller.metadata(),
    )
    assert reply.access_token and reply.refresh_token and reply.token_type == "Bearer"
    # The old access token and every old refresh token are dead...
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await profiles(caller.channel).GetCurrentUser(
            identity_pb2.GetCurrentUserRequest(), metadata=caller.metadata()
        )
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    for old in (caller.refresh_token, other.refresh_token):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.RefreshSession(identity_pb2.RefreshSessionRequest(refresh_token=old))
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # ...the new pair works, and so does the new password; the old one does not.
    me = await profiles(caller.channel).GetCurrentUser(
        identity_pb2.GetCurrentUserRequest(),
        metadata=(("authorization", f"Bearer {reply.access_token}"),),
    )
    assert me.user.id == caller.user_id
    await stub.RefreshSession(identity_pb2.RefreshSessionRequest(refresh_token=reply.refresh_token))
    await stub.CreateSession(
        identity_pb2.CreateSessionRequest(email=caller.user.email, password="a-brand-new-password")
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.CreateSession(
            identity_pb2.CreateSessionRequest(email=caller.user.email, password=PASSWORD)
        )
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert ("user.change_password", "success", caller.user_id) in await pg.audit(
        f"users/{caller.user_id}"
    )


async def test_a_wrong_current_password_changes_nothing_and_is_audited(
    caller: Caller, pg: Pg
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ids(caller.channel).ChangePassword(
            identity_pb2.ChangePasswordRequest(
                current_password="not-the-password", new_password="a-brand-new-password"
            ),
            metadata=caller.metadata(),
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "current_password" in field_violations(raised.value)
    assert ("user.change_password", "failure", caller.user_id) in await pg.audit(
        f"users/{caller.user_id}"
    )
    # Still logged in with the same token and password.
    await profiles(caller.channel).GetCurrentUser(
        identity_pb2.GetCurrentUserRequest(), metadata=caller.metadata()
    )


@pytest.mark.parametrize(
    ("current", "new", "field"),
    [
        ("", "a-brand-new-password", "current_password"),
        (PASSWORD, "short", "new_password"),
        (PASSWORD, "x" * 73, "new_password"),
        (PASSWORD, PASSWORD, "new_password"),
    ],
)
async def test_bad_password_changes_are_refused_before_any_work(
    caller: Caller, pg: Pg, current: str, new: str, field: str
) -> None:
    async with pg.unchanged():
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await ids(caller.channel).ChangePassword(
                identity_pb2.ChangePasswordRequest(current_password=current, new_password=new),
                metadata=caller.metadata(),
            )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(raised.value)


# ---------------------------------------------------------------------------- directory


async def test_admins_search_and_filter_the_user_directory(
    channel: grpc.aio.Channel, admin: Caller
) -> None:
    tag = uuid.uuid4().hex[:8]
    ada = await Caller.register(channel, name=f"Ádá Zq{tag} Lovelace")
    bob = await Caller.register(channel, name=f"Bob Zq{tag}")
    teacher = await Caller.register(channel, name=f"T Zq{tag}")
    await ids(channel).SetUserRole(  # through the API, so that the read model hears of it
        identity_pb2.SetUserRoleRequest(user_id=teacher.user_id, role=access_pb2.ROLE_INSTRUCTOR),
        metadata=admin.metadata(),
    )
    off = await ids(channel).SetUserDisabled(
        identity_pb2.SetUserDisabledRequest(user_id=bob.user_id, disabled=True),
        metadata=admin.metadata(),
    )
    md = admin.metadata(off.consistency_token)
    stub = profiles(channel)

    async def search(**kw: object) -> list[str]:
        reply = await stub.ListUsers(identity_pb2.ListUsersRequest(**kw), metadata=md)  # type: ignore[arg-type]
        return [u.id for u in reply.users]

    everyone = {ada.user_id, bob.user_id, teacher.user_id}
    assert set(await search(q=f"ZQ{tag}")) == everyone  # a word of the name, any case
    assert await search(q=f"ada zq{tag}") == [ada.user_id]  # accents ignored
    assert await search(q=ada.user.email[:14]) == [ada.user_id]  # an email prefix
    assert await search(q=f"zq{tag}", role=access_pb2.ROLE_INSTRUCTOR) == [teacher.user_id]
    assert await search(q=f"zq{tag}", disabled=True) == [bob.user_id]
    assert set(await search(q=f"zq{tag}", disabled=False)) == {ada.user_id, teacher.user_id}
    # Pages: ordered by email, no duplicates, no gaps.
    seen: list[str] = []
    token = ""
    while True:
        reply = await stub.ListUsers(
            identity_pb2.ListUsersRequest(q=f"zq{tag}", page_size=1, page_token=token), metadata=md
        )
        seen += [u.email for u in reply.users]
        token = reply.next_page_token
        if not token:
            break
    assert seen == sorted(seen) and len(seen) == 3
    one = await stub.GetUser(identity_pb2.GetUserRequest(user_id=bob.user_id), metadata=md)
    assert (one.user.email, one.user.disabled) == (bob.user.email, True)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetUser(identity_pb2.GetUserRequest(user_id=str(uuid.uuid4())), metadata=md)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.ListUsers(
            identity_pb2.ListUsersRequest(q="other", page_token=token or "eyJrIjoiIn0"),
            metadata=md,
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_students_cannot_read_the_directory(caller: Caller) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await profiles(caller.channel).ListUsers(
            identity_pb2.ListUsersRequest(), metadata=caller.metadata()
        )
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED


# ----------------------------------------------------------- resume, certificate, by slug


async def test_resume_and_a_public_certificate_when_the_course_is_completed(
    channel: grpc.aio.Channel, caller: Caller, instructor: Caller, pg: Pg
) -> None:
    course, lessons = await published_course(
        instructor, [article("One"), article("Two"), article("Three")]
    )
    token = (await enroll(caller, course.id)).consistency_token
    reads = progress(channel)
    mine = await reads.GetCourseProgress(
        learning_pb2.GetCourseProgressRequest(course_id=course.id),
        metadata=caller.metadata(token),
    )
    assert (mine.progress.last_lesson_id, mine.progress.next_lesson_id) == ("", lessons[0].id)
    token = await complete(caller, course.id, lessons[1].id)
    board = await reads.ListMyEnrollments(
        learning_pb2.ListMyEnrollmentsRequest(), metadata=caller.metadata(token)
    )
    [entry] = [e for e in board.enrollments if e.course_id == course.id]
    assert (entry.last_lesson_id, entry.next_lesson_id) == (lessons[1].id, lessons[0].id)
    assert entry.certificate_id == ""
    await complete(caller, course.id, lessons[0].id)
    token = await complete(caller, course.id, lessons[2].id)
    mine = await reads.GetCourseProgress(
        learning_pb2.GetCourseProgressRequest(course_id=course.id),
        metadata=caller.metadata(token),
    )
    done = mine.progress
    assert done.state == learning_pb2.ENROLLMENT_STATE_COMPLETED
    assert (done.last_lesson_id, done.next_lesson_id) == (lessons[2].id, "")
    assert len(done.certificate_id) >= 22
    rows = await pg.rows(
        "SELECT id, completed_at FROM certificates WHERE user_id = %s AND course_id = %s",
        caller.user_id,
        course.id,
    )
    assert [r[0] for r in rows] == [done.certificate_id]
    # Public: no token needed; names, title and date, no ids or emails of the learner.
    cert = await learning_pb2_grpc.CertificateServiceStub(channel).GetCertificate(
        learning_pb2.GetCertificateRequest(certificate_id=done.certificate_id),
        metadata=(("x-consistency-token", token),),
    )
    c = cert.certificate
    assert (c.id, c.course_id, c.course_title) == (done.certificate_id, course.id, course.title)
    assert (c.learner_name, c.instructor_name) == (caller.user.display_name, "Instructor")
    assert c.complete_time.ToDatetime().replace(tzinfo=rows[0][1].tzinfo) == rows[0][1]
    for bad, code in (
        ("x" * 22, grpc.StatusCode.NOT_FOUND),
        ("../etc", grpc.StatusCode.INVALID_ARGUMENT),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await learning_pb2_grpc.CertificateServiceStub(channel).GetCertificate(
                learning_pb2.GetCertificateRequest(certificate_id=bad)
            )
        assert raised.value.code() == code


async def test_a_course_is_found_by_its_slug_with_getcourse_visibility(
    channel: grpc.aio.Channel, caller: Caller, instructor: Caller
) -> None:
    course, _ = await published_course(instructor)
    draft = await new_course(instructor)
    stub = catalog(channel)
    found = await stub.GetCourseBySlug(
        courses_pb2.GetCourseBySlugRequest(slug=course.slug),
        metadata=(("x-consistency-token", (await enroll(caller, course.id)).consistency_token),),
    )
    assert found.course.id == course.id and len(found.lessons) == 1
    for who in (None, caller):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.GetCourseBySlug(
                courses_pb2.GetCourseBySlugRequest(slug=draft.slug),
                metadata=who.metadata() if who else (),
            )
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    mine = await stub.GetCourseBySlug(
        courses_pb2.GetCourseBySlugRequest(slug=draft.slug), metadata=instructor.metadata()
    )
    assert mine.course.id == draft.id
    for bad in ("", "$gt", "a.b", "UPPER", "x" * 101):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetCourseBySlug(courses_pb2.GetCourseBySlugRequest(slug=bad))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
