"""Authorization refusals are audited (outcome `denied`, own transaction) and cannot flood the
audit log (issue 12: a student's setRole, an instructor's edit of another's course were 403
and left no trace)."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf import field_mask_pb2

from learnflow.context import CallContext, Principal
from learnflow.security.denial_audit import DenialAudit
from learnflow.server import Backend
from learnflow.v1 import access_pb2, courses_pb2, identity_pb2, identity_pb2_grpc
from tests.commands_support import Pg, courses, published_course
from tests.support import Caller

SET_ROLE = "/learnflow.v1.IdentityService/SetUserRole"
UPDATE_COURSE = "/learnflow.v1.CourseService/UpdateCourse"


async def _denied(pg: Pg, method: str, actor_id: str) -> list[tuple[str, dict[str, object]]]:
    rows = await pg.rows(
        "SELECT action, details FROM audit_log"
        " WHERE resource = %s AND actor_id = %s AND outcome = 'denied' ORDER BY id",
        method,
        actor_id,
    )
    return [(action, details) for action, details in rows]


async def test_a_students_set_role_is_refused_and_audited(
    channel: grpc.aio.Channel, caller: Caller, pg: Pg
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await identity_pb2_grpc.IdentityServiceStub(channel).SetUserRole(
            identity_pb2.SetUserRoleRequest(user_id=caller.user_id, role=access_pb2.ROLE_ADMIN),
            metadata=caller.metadata(),
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    rows = await _denied(pg, SET_ROLE, caller.user_id)
    assert [action for action, _ in rows] == ["authorization.denied"]


async def test_editing_another_instructors_course_is_refused_and_audited(
    channel: grpc.aio.Channel, instructor: Caller, postgres_url: str, pg: Pg
) -> None:
    course, _ = await published_course(instructor)
    other = await Caller.with_role(channel, postgres_url, "instructor", name="Other")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await courses(channel).UpdateCourse(
            courses_pb2.UpdateCourseRequest(
                course=courses_pb2.Course(id=course.id, title="Taken over"),
                update_mask=field_mask_pb2.FieldMask(paths=["title"]),
            ),
            metadata=other.metadata(),
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    rows = await _denied(pg, UPDATE_COURSE, other.user_id)
    assert [action for action, _ in rows] == ["authorization.denied"]
    assert "owner" in str(rows[0][1]["reason"])
    # The refused change itself wrote nothing.
    assert await pg.value("SELECT title FROM courses WHERE id = %s", course.id) == course.title


async def test_a_flood_of_refusals_is_recorded_once_each_up_to_the_budget_then_aggregated(
    caller: Caller, pg: Pg, backend: Backend
) -> None:
    audit = DenialAudit(backend.db, per_minute=3)
    call = CallContext(
        method=SET_ROLE,
        request_id="flood",
        client_address="192.0.2.7",
        principal=Principal(uuid.UUID(caller.user_id), "student"),
    )
    for _ in range(10):
        await audit.record(call, "your role may not call this method")
    assert len(await _denied(pg, SET_ROLE, caller.user_id)) == 3
    await audit.flush()
    rows = await _denied(pg, SET_ROLE, caller.user_id)
    assert len(rows) == 4
    assert rows[-1] == ("authorization.denied.aggregated", {"count": 7})
