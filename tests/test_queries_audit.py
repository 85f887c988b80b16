"""AuditService: admins read the audit trail, newest first, filtered, paged."""

from __future__ import annotations

import grpc
import pytest

from learnflow.v1 import audit_pb2
from tests.commands_support import enroll, published_course
from tests.read_support import audit
from tests.support import Caller, field_violations


async def test_admins_list_an_actors_events_newest_first_in_pages(
    channel: grpc.aio.Channel, admin: Caller, instructor: Caller, caller: Caller
) -> None:
    course, _ = await published_course(instructor)
    token = (await enroll(caller, course.id)).consistency_token
    stub = audit(channel)
    actions: list[str] = []
    ids: list[int] = []
    page_token = ""
    while True:
        reply = await stub.ListAuditEvents(
            audit_pb2.ListAuditEventsRequest(
                actor_id=caller.user_id, page_size=1, page_token=page_token
            ),
            metadata=admin.metadata(token),
        )
        actions += [e.action for e in reply.audit_events]
        ids += [int(e.id) for e in reply.audit_events]
        assert all(e.actor_id == caller.user_id for e in reply.audit_events)
        page_token = reply.next_page_token
        if not page_token:
            break
    assert actions[0] == "enrollment.enroll"
    assert "session.create" in actions
    assert ids == sorted(ids, reverse=True)
    by_action = await stub.ListAuditEvents(
        audit_pb2.ListAuditEventsRequest(actor_id=caller.user_id, action="enrollment.enroll"),
        metadata=admin.metadata(),
    )
    assert [e.resource for e in by_action.audit_events] == [
        f"courses/{course.id}/enrollments/{caller.user_id}"
    ]
    assert by_action.audit_events[0].outcome == "success"
    assert by_action.audit_events[0].create_time.seconds > 0


async def test_students_and_instructors_may_not_read_the_audit_trail(
    channel: grpc.aio.Channel, instructor: Caller, caller: Caller, admin: Caller
) -> None:
    for who in (caller, instructor):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await audit(channel).ListAuditEvents(
                audit_pb2.ListAuditEventsRequest(), metadata=who.metadata()
            )
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await audit(channel).ListAuditEvents(
            audit_pb2.ListAuditEventsRequest(page_token="bad"), metadata=admin.metadata()
        )
    assert "page_token" in field_violations(err.value)


async def test_admins_list_the_events_on_one_resource(
    channel: grpc.aio.Channel, admin: Caller, instructor: Caller, caller: Caller
) -> None:
    course, _ = await published_course(instructor)
    token = (await enroll(caller, course.id)).consistency_token
    resource = f"courses/{course.id}/enrollments/{caller.user_id}"
    stub = audit(channel)
    reply = await stub.ListAuditEvents(
        audit_pb2.ListAuditEventsRequest(resource=resource, page_size=1),
        metadata=admin.metadata(token),
    )
    assert [(e.action, e.resource) for e in reply.audit_events] == [("enrollment.enroll", resource)]
    # Nothing else was done to that enrollment: one page, and a token bound to its filter.
    assert reply.next_page_token == ""
    other = await stub.ListAuditEvents(
        audit_pb2.ListAuditEventsRequest(resource=f"courses/{course.id}"),
        metadata=admin.metadata(),
    )
    assert {e.resource for e in other.audit_events} == {f"courses/{course.id}"}
    assert "course.publish" in {e.action for e in other.audit_events}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListAuditEvents(
            audit_pb2.ListAuditEventsRequest(resource="x" * 201), metadata=admin.metadata()
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "resource" in field_violations(err.value)
