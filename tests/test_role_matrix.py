"""Role matrix: every RPC of the contract, called as anonymous, student, instructor and admin,
gets the outcome its `(learnflow.v1.access)` rule declares.

The list of RPCs and their rules comes from the descriptors, never from a list in this file.
A refusal by the access layer is recognised by its ErrorInfo (domain `access.learnflow.v1`),
so an RPC that the interceptor wrongly lets through cannot pass because its handler happens to
answer with the same status code. Allowed callers must get past the interceptor: any answer
without that ErrorInfo, except UNIMPLEMENTED (the RPC is in the contract but not served),
INTERNAL and UNKNOWN (an empty request must be refused cleanly, not crash a handler).

Also here: refusals by the access layer change nothing, and handlers answer NOT_FOUND rather
than PERMISSION_DENIED where the latter would reveal that a resource exists.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import psycopg
import pytest
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.rpc import error_details_pb2

from learnflow.security.access import MethodRule, api_services, load_rules
from learnflow.security.denials import (
    ERROR_DOMAIN,
    REASON_ROLE_NOT_ALLOWED,
    REASON_TOKEN_REQUIRED,
)
from learnflow.v1 import (
    access_pb2,
    courses_pb2,
    courses_pb2_grpc,
    discussion_pb2,
    identity_pb2,
    identity_pb2_grpc,
    learning_pb2,
)
from tests.support import Caller, rich_status

ROLES = ("anonymous", "student", "instructor", "admin")
RULES = load_rules()
METHODS: dict[str, MethodDescriptor] = {
    f"/{service.full_name}/{method.name}": method
    for service in api_services()
    for method in service.methods
}
# Codes that say the call never reached a working handler.
NOT_SERVED = (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)


@dataclass(frozen=True)
class Outcome:
    code: grpc.StatusCode
    access_reason: str  # ErrorInfo reason of the access layer, "" when none
    access_method: str  # the ErrorInfo's "method" metadata
    message: str


def expected_denial(rule: MethodRule, role: str) -> tuple[grpc.StatusCode, str] | None:
    """What the rule declares for `role`: the refusal, or None when the call may go through."""
    if role == "anonymous":
        if rule.public:
            return None
        return grpc.StatusCode.UNAUTHENTICATED, REASON_TOKEN_REQUIRED
    if rule.roles and role not in rule.roles:
        return grpc.StatusCode.PERMISSION_DENIED, REASON_ROLE_NOT_ALLOWED
    return None


def _access_info(error: grpc.aio.AioRpcError) -> tuple[str, str]:
    try:
        status = rich_status(error)
    except AssertionError:
        return "", ""  # e.g. UNIMPLEMENTED from grpc itself carries no details
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info) and info.domain == ERROR_DOMAIN:
            return info.reason, info.metadata["method"]
    return "", ""


async def call_rpc(
    channel: grpc.aio.Channel,
    path: str,
    request: Message,
    metadata: tuple[tuple[str, str], ...] = (),
) -> Outcome:
    """Calls any unary or server-streaming RPC of the contract by its path."""
    method = METHODS[path]
    response_class = GetMessageClass(method.output_type)
    try:
        if method.server_streaming:
            stream = channel.unary_stream(
                path,
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=response_class.FromString,
            )
            call = stream(request, metadata=metadata, timeout=10)
            async for _ in call:
                call.cancel()  # a first message: the handler runs
                return Outcome(grpc.StatusCode.OK, "", "", "first stream message")
            return Outcome(grpc.StatusCode.OK, "", "", "empty stream")
        unary = channel.unary_unary(
            path,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_class.FromString,
        )
        await unary(request, metadata=metadata, timeout=10)
        return Outcome(grpc.StatusCode.OK, "", "", "")
    except grpc.aio.AioRpcError as error:
        reason, denied_method = _access_info(error)
        return Outcome(error.code(), reason, denied_method, error.details() or "")


@pytest.fixture(scope="module")
async def callers(channel: grpc.aio.Channel, postgres_url: str) -> dict[str, Caller | None]:
    """One caller per role, shared by the matrix (no matrix call can revoke their sessions:
    requests are empty)."""
    return {
        "anonymous": None,
        "student": await Caller.register(channel, name="Matrix Student"),
        "instructor": await Caller.with_role(channel, postgres_url, "instructor", name="MI"),
        "admin": await Caller.with_role(channel, postgres_url, "admin", name="Matrix Admin"),
    }


def test_the_matrix_covers_the_contract() -> None:
    assert set(METHODS) == set(RULES)
    assert len(METHODS) >= 30
    assert any(m.server_streaming for m in METHODS.values()), "no streaming RPC in the matrix"
    # Each kind of outcome occurs, so the matrix exercises all of the interceptor's branches.
    kinds = {expected_denial(rule, role) for rule in RULES.values() for role in ROLES}
    assert None in kinds
    assert (grpc.StatusCode.UNAUTHENTICATED, REASON_TOKEN_REQUIRED) in kinds
    assert (grpc.StatusCode.PERMISSION_DENIED, REASON_ROLE_NOT_ALLOWED) in kinds


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("path", sorted(METHODS), ids=lambda p: p.rsplit(".", 1)[-1])
async def test_role_matrix(
    channel: grpc.aio.Channel, callers: dict[str, Caller | None], path: str, role: str
) -> None:
    rule = RULES[path]
    who = callers[role]
    request = GetMessageClass(METHODS[path].input_type)()
    outcome = await call_rpc(channel, path, request, who.metadata() if who else ())
    denial = expected_denial(rule, role)
    if denial is not None:
        code, reason = denial
        assert (outcome.code, outcome.access_reason, outcome.access_method) == (
            code,
            reason,
            path,
        ), f"{role} on {path}: expected the access layer to refuse, got {outcome}"
    else:
        assert outcome.code not in NOT_SERVED, (
            f"{role} on {path}: the call must reach a working handler, got {outcome}"
        )
        assert outcome.access_reason == "", (
            f"{role} on {path}: the rule allows this caller, yet the access layer refused: "
            f"{outcome}"
        )


async def test_a_token_on_a_public_method_is_still_checked(channel: grpc.aio.Channel) -> None:
    """A public RPC accepts anonymous callers, but a bad token is not silently ignored."""
    public = next(path for path, rule in RULES.items() if rule.public)
    request = GetMessageClass(METHODS[public].input_type)()
    outcome = await call_rpc(channel, public, request, (("authorization", "Bearer not-a-token"),))
    assert (outcome.code, outcome.access_reason) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "ACCESS_TOKEN_INVALID",
    )


# ---------------------------------------------------- refusals change nothing, with real requests


async def _row_counts(postgres_url: str) -> dict[str, int]:
    url = postgres_url.replace("postgresql+psycopg://", "postgresql://", 1)
    tables = ("users", "courses", "lessons", "enrollments", "comments", "audit_log", "events")
    sql = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in tables)
    async with await psycopg.AsyncConnection.connect(url) as conn:
        rows = await (await conn.execute(sql)).fetchall()
    return {name: count for name, count in rows}


async def _only_the_refusal_was_written(postgres_url: str, before: dict[str, int]) -> None:
    """The refused change wrote nothing; the refusal itself is one audit row (outcome
    `denied`) and that row's event."""
    after = await _row_counts(postgres_url)
    assert {t: after[t] - before[t] for t in after if after[t] != before[t]} == {
        "audit_log": 1,
        "events": 1,
    }


async def test_a_student_cannot_promote_themself_and_nothing_is_written(
    channel: grpc.aio.Channel, caller: Caller, postgres_url: str
) -> None:
    before = await _row_counts(postgres_url)
    request = identity_pb2.SetUserRoleRequest(user_id=caller.user_id, role=access_pb2.ROLE_ADMIN)
    path = "/learnflow.v1.IdentityService/SetUserRole"
    outcome = await call_rpc(channel, path, request, caller.metadata())
    assert (outcome.code, outcome.access_reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        REASON_ROLE_NOT_ALLOWED,
    )
    await _only_the_refusal_was_written(postgres_url, before)
    me = await identity_pb2_grpc.ProfileServiceStub(channel).GetCurrentUser(
        identity_pb2.GetCurrentUserRequest(), metadata=caller.metadata()
    )
    assert me.user.role == access_pb2.ROLE_STUDENT


async def test_a_student_cannot_create_a_course_and_nothing_is_written(
    channel: grpc.aio.Channel, caller: Caller, postgres_url: str
) -> None:
    before = await _row_counts(postgres_url)
    request = courses_pb2.CreateCourseRequest(course=courses_pb2.Course(title="Sneaky course"))
    outcome = await call_rpc(
        channel, "/learnflow.v1.CourseService/CreateCourse", request, caller.metadata()
    )
    assert (outcome.code, outcome.access_reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        REASON_ROLE_NOT_ALLOWED,
    )
    await _only_the_refusal_was_written(postgres_url, before)


async def test_a_role_refusal_names_the_roles_that_may_call(
    channel: grpc.aio.Channel, caller: Caller
) -> None:
    # The client learns from the refusal itself whom to ask, in the enum names the JSON of
    # `User.role` uses; the contract's rule is the only source.
    rule = RULES["/learnflow.v1.CourseService/CreateCourse"]
    assert rule.roles == {"instructor", "admin"}
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await courses_pb2_grpc.CourseServiceStub(channel).CreateCourse(
            courses_pb2.CreateCourseRequest(course=courses_pb2.Course(title="Sneaky course")),
            metadata=caller.metadata(),
        )
    assert raised.value.code() is grpc.StatusCode.PERMISSION_DENIED
    infos = []
    for detail in rich_status(raised.value).details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info) and info.domain == ERROR_DOMAIN:
            infos.append(info)
    assert [i.reason for i in infos] == [REASON_ROLE_NOT_ALLOWED]
    assert infos[0].metadata["allowedRoles"] == "ROLE_INSTRUCTOR,ROLE_ADMIN"
    assert infos[0].metadata["method"] == "/learnflow.v1.CourseService/CreateCourse"


# --------------------------------------------------------- NOT_FOUND where a refusal would leak


@dataclass
class Draft:
    owner: Caller
    course_id: str
    lesson_id: str


@pytest.fixture
async def draft(channel: grpc.aio.Channel, postgres_url: str) -> AsyncIterator[Draft]:
    """An instructor's unpublished course with one lesson."""
    owner = await Caller.with_role(channel, postgres_url, "instructor", name="Draft Owner")
    courses = courses_pb2_grpc.CourseServiceStub(channel)
    course = await courses.CreateCourse(
        courses_pb2.CreateCourseRequest(course=courses_pb2.Course(title="Secret draft")),
        metadata=owner.metadata(),
    )
    lesson = await courses.CreateLesson(
        courses_pb2.CreateLessonRequest(
            course_id=course.course.id,
            lesson=courses_pb2.Lesson(
                title="Intro", article=courses_pb2.Article(markdown="# Hello")
            ),
        ),
        metadata=owner.metadata(),
    )
    yield Draft(owner, course.course.id, lesson.lesson.id)


def _probes(course_id: str, lesson_id: str) -> list[tuple[str, Message]]:
    """Calls naming a course (and lesson) that a non-staff caller may make on a course they
    may not see; each must answer exactly as for a course that does not exist."""
    title = courses_pb2.Course(id=course_id, title="Renamed")
    return [
        (
            "/learnflow.v1.CourseService/UpdateCourse",
            courses_pb2.UpdateCourseRequest(course=title, update_mask=FieldMask(paths=["title"])),
        ),
        (
            "/learnflow.v1.CourseService/PublishCourse",
            courses_pb2.PublishCourseRequest(course_id=course_id),
        ),
        (
            "/learnflow.v1.CourseService/UnpublishCourse",
            courses_pb2.UnpublishCourseRequest(course_id=course_id),
        ),
        (
            "/learnflow.v1.CourseService/RestoreCourse",
            courses_pb2.RestoreCourseRequest(course_id=course_id),
        ),
        (
            "/learnflow.v1.CourseService/DeleteCourse",
            courses_pb2.DeleteCourseRequest(course_id=course_id),
        ),
        (
            "/learnflow.v1.CourseService/CreateLesson",
            courses_pb2.CreateLessonRequest(
                course_id=course_id,
                lesson=courses_pb2.Lesson(title="x", article=courses_pb2.Article(markdown="x")),
            ),
        ),
        (
            "/learnflow.v1.LearningService/EnrollInCourse",
            learning_pb2.EnrollInCourseRequest(course_id=course_id),
        ),
        (
            "/learnflow.v1.DiscussionService/CreateComment",
            discussion_pb2.CreateCommentRequest(
                course_id=course_id, lesson_id=lesson_id, body="hi"
            ),
        ),
        (
            "/learnflow.v1.CatalogService/GetCourse",
            courses_pb2.GetCourseRequest(course_id=course_id),
        ),
        (
            "/learnflow.v1.CatalogService/GetLesson",
            courses_pb2.GetLessonRequest(course_id=course_id, lesson_id=lesson_id),
        ),
        (
            "/learnflow.v1.CommentQueryService/ListComments",
            discussion_pb2.ListCommentsRequest(course_id=course_id, lesson_id=lesson_id),
        ),
        (
            "/learnflow.v1.ProgressService/ListCourseEnrollments",
            learning_pb2.ListCourseEnrollmentsRequest(course_id=course_id),
        ),
        (
            "/learnflow.v1.ProgressService/GetCourseProgress",
            learning_pb2.GetCourseProgressRequest(course_id=course_id),
        ),
    ]


PROBED = [path for path, _ in _probes("", "")]


@pytest.mark.parametrize("prober", ["student", "other instructor"])
@pytest.mark.parametrize("path", PROBED, ids=lambda p: p.rsplit("/", 1)[-1])
async def test_someone_elses_draft_is_indistinguishable_from_a_missing_course(
    channel: grpc.aio.Channel,
    postgres_url: str,
    draft: Draft,
    caller: Caller,
    prober: str,
    path: str,
) -> None:
    who = (
        caller
        if prober == "student"
        else await Caller.with_role(channel, postgres_url, "instructor", name="Other")
    )
    missing_course, missing_lesson = str(uuid.uuid4()), str(uuid.uuid4())
    on_draft = dict(_probes(draft.course_id, draft.lesson_id))[path]
    on_missing = dict(_probes(missing_course, missing_lesson))[path]
    seen = await call_rpc(channel, path, on_draft, who.metadata())
    absent = await call_rpc(channel, path, on_missing, who.metadata())
    assert seen.code not in NOT_SERVED, f"{path}: {seen}"
    if RULES[path].roles and "student" not in RULES[path].roles and prober == "student":
        # The access layer refuses by role before any lookup: nothing about the course leaks.
        assert seen.access_reason == absent.access_reason == REASON_ROLE_NOT_ALLOWED
        return
    assert seen.code == grpc.StatusCode.NOT_FOUND, f"{prober} on {path}: {seen}"
    assert absent.code == grpc.StatusCode.NOT_FOUND, f"{prober} on {path}: {absent}"
    hide_draft = seen.message.replace(draft.course_id, "C").replace(draft.lesson_id, "L")
    hide_missing = absent.message.replace(missing_course, "C").replace(missing_lesson, "L")
    assert hide_draft == hide_missing, "the answers differ in more than the ids"


async def test_staff_see_the_draft_the_probes_could_not(
    channel: grpc.aio.Channel, draft: Draft
) -> None:
    """The control for the test above: the same draft exists and its owner reaches it."""
    courses = courses_pb2_grpc.CourseServiceStub(channel)
    updated = await courses.UpdateCourse(
        courses_pb2.UpdateCourseRequest(
            course=courses_pb2.Course(id=draft.course_id, title="Still secret"),
            update_mask=FieldMask(paths=["title"]),
        ),
        metadata=draft.owner.metadata(),
    )
    assert updated.course.title == "Still secret"
    enrolled = await call_rpc(
        channel,
        "/learnflow.v1.LearningService/EnrollInCourse",
        learning_pb2.EnrollInCourseRequest(course_id=draft.course_id),
        draft.owner.metadata(),
    )
    # The owner learns the true reason (a draft takes no enrollments), not NOT_FOUND.
    assert enrolled.code == grpc.StatusCode.FAILED_PRECONDITION, enrolled


async def test_a_published_course_of_someone_else_is_refused_not_hidden(
    channel: grpc.aio.Channel, postgres_url: str, draft: Draft
) -> None:
    """Once published the course is public, so PERMISSION_DENIED leaks nothing and is right."""
    courses = courses_pb2_grpc.CourseServiceStub(channel)
    await courses.PublishCourse(
        courses_pb2.PublishCourseRequest(course_id=draft.course_id),
        metadata=draft.owner.metadata(),
    )
    other = await Caller.with_role(channel, postgres_url, "instructor", name="Other")
    outcome = await call_rpc(
        channel,
        "/learnflow.v1.CourseService/UpdateCourse",
        courses_pb2.UpdateCourseRequest(
            course=courses_pb2.Course(id=draft.course_id, title="Hijacked"),
            update_mask=FieldMask(paths=["title"]),
        ),
        other.metadata(),
    )
    # A handler's refusal: no access-layer ErrorInfo (ownership is the handler's rule).
    assert (outcome.code, outcome.access_reason) == (grpc.StatusCode.PERMISSION_DENIED, "")
