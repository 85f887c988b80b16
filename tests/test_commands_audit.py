"""The audit log and the event log: append-only as enforced by PostgreSQL itself, here even for
the schema's owner (the triggers; tests/test_database_roles.py shows the server's own role is
refused by privileges before that), and audit rows that say who did what to which resource,
how it ended, for which request and from where.

Which failures are audited: authentication events are, including failed logins (DESIGN.md
§2), each in a transaction of its own since the login's own work is abandoned. Refused
commands are not state changes and write nothing (see test_commands_courses.py).
"""

from __future__ import annotations

import datetime as dt
import uuid

import grpc
import psycopg
import pytest

from learnflow.v1 import access_pb2, courses_pb2, identity_pb2, identity_pb2_grpc
from tests.commands_support import Pg, courses, fails
from tests.support import PASSWORD, Caller

STATEMENTS = {
    ("audit_log", "update"): "UPDATE audit_log SET outcome = 'success' WHERE id = %s",
    ("audit_log", "delete"): "DELETE FROM audit_log WHERE id = %s",
    ("audit_log", "truncate"): "TRUNCATE audit_log",
    ("events", "update"): "UPDATE events SET payload = '{}' WHERE position = %s",
    ("events", "delete"): "DELETE FROM events WHERE position = %s",
    ("events", "truncate"): "TRUNCATE events",
}


async def latest_key(pg: Pg, table: str) -> int:
    key = "id" if table == "audit_log" else "position"
    value: int = await pg.value(f"SELECT max({key}) FROM {table}")
    return value


@pytest.mark.parametrize("replica", [False, True], ids=["normal", "replication-role-replica"])
@pytest.mark.parametrize(("table", "verb"), sorted(STATEMENTS))
async def test_audit_and_event_rows_cannot_be_changed_or_removed(
    caller: Caller, pg: Pg, table: str, verb: str, replica: bool
) -> None:
    key = await latest_key(pg, table)  # `caller` registered and logged in: rows exist
    before = await pg.counts()
    snapshot = await pg.rows(f"SELECT * FROM {table} ORDER BY 1 DESC LIMIT 5")
    sql = STATEMENTS[(table, verb)]
    async with await psycopg.AsyncConnection.connect(pg.url, autocommit=True) as conn:
        if replica:
            # Ordinary triggers are skipped in a replica-role session; these fire ALWAYS.
            await conn.execute("SET session_replication_role = replica")
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as err:
            await conn.execute(sql, (key,) if "%s" in sql else ())
    assert f"{table} is append-only" in str(err.value)
    assert await pg.counts() == before
    assert await pg.rows(f"SELECT * FROM {table} ORDER BY 1 DESC LIMIT 5") == snapshot


async def test_the_trigger_check_runs_as_the_owner(pg: Pg) -> None:
    """The check above runs as the schema's owner (a superuser here): the triggers hold even
    for a role that privileges do not restrict."""
    assert await pg.value("SELECT rolsuper FROM pg_roles WHERE rolname = current_user") is True


async def test_audit_rows_carry_actor_action_resource_outcome_request_and_address(
    instructor: Caller, pg: Pg
) -> None:
    request_id = f"req-{uuid.uuid4().hex}"
    started = dt.datetime.now(dt.UTC)
    call = courses(instructor.channel).CreateCourse(
        courses_pb2.CreateCourseRequest(course=courses_pb2.Course(title="Audited course")),
        metadata=(*instructor.metadata(), ("x-request-id", request_id)),
    )
    reply = await call
    assert dict(await call.trailing_metadata())["x-request-id"] == request_id  # echoed back

    [row] = await pg.rows(
        "SELECT actor_id::text, action, resource, outcome, request_id, client_address,"
        " occurred_at FROM audit_log WHERE request_id = %s",
        request_id,
    )
    actor, action, resource, outcome, stored_request, address, occurred_at = row
    assert (actor, action, resource, outcome, stored_request) == (
        instructor.user_id,
        "course.create",
        f"courses/{reply.course.id}",
        "success",
        request_id,
    )
    assert address == "127.0.0.1"
    assert started - dt.timedelta(seconds=5) <= occurred_at <= dt.datetime.now(dt.UTC)
    # The audit read model is fed by an audit.recorded event of the same transaction.
    recorded = [
        payload
        for event_type, payload in await pg.rows(
            "SELECT event_type, payload FROM events WHERE event_type = 'audit.recorded'"
            " AND payload->>'request_id' = %s",
            request_id,
        )
    ]
    assert [(p["actor_id"], p["action"], p["client_address"]) for p in recorded] == [
        (instructor.user_id, "course.create", "127.0.0.1")
    ]


async def test_a_request_without_an_id_gets_one(instructor: Caller, pg: Pg) -> None:
    call = courses(instructor.channel).CreateCourse(
        courses_pb2.CreateCourseRequest(course=courses_pb2.Course(title="No request id")),
        metadata=instructor.metadata(),
    )
    reply = await call
    given = dict(await call.trailing_metadata())["x-request-id"]
    assert given
    assert (
        await pg.value(
            "SELECT request_id FROM audit_log WHERE resource = %s", f"courses/{reply.course.id}"
        )
        == given
    )


@pytest.mark.parametrize(
    ("forwarded", "recorded"),
    [
        ("203.0.113.7", "203.0.113.7"),
        # The rightmost hop is the one the trusted proxy appended; the rest is the client's.
        ("203.0.113.7, 10.0.0.1", "10.0.0.1"),
        # Not an IP: never stored, the peer (the local proxy) instead.
        ("<img src=x onerror=alert(1)>", "127.0.0.1"),
    ],
)
async def test_the_gateway_forwarded_client_address_is_recorded(
    instructor: Caller, pg: Pg, forwarded: str, recorded: str
) -> None:
    # A proxy on this host (the gateway) says who the client is; the server trusts loopback.
    reply = await courses(instructor.channel).CreateCourse(
        courses_pb2.CreateCourseRequest(course=courses_pb2.Course(title="Forwarded")),
        metadata=(*instructor.metadata(), ("x-forwarded-for", forwarded)),
    )
    assert (
        await pg.value(
            "SELECT client_address FROM audit_log WHERE resource = %s",
            f"courses/{reply.course.id}",
        )
        == recorded
    )


async def test_logins_are_audited_and_a_failed_one_writes_only_its_audit(
    channel: grpc.aio.Channel, caller: Caller, pg: Pg
) -> None:
    identity = identity_pb2_grpc.IdentityServiceStub(channel)
    request_id = f"login-{uuid.uuid4().hex}"

    async def failed_login(email: str, password: str) -> tuple[str, str | None, dict[str, str]]:
        before = await pg.counts()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await identity.CreateSession(
                identity_pb2.CreateSessionRequest(email=email, password=password),
                metadata=(("x-request-id", request_id),),
            )
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        after = await pg.counts()
        # A failed login is an auth event: exactly one audit row and its audit.recorded
        # event, nothing else (no session, no user change).
        assert {t: after[t] - before[t] for t in after if after[t] != before[t]} == {
            "audit_log": 1,
            "events": 1,
        }
        [(action, outcome, actor, resource, details)] = await pg.rows(
            "SELECT action, outcome, actor_id::text, resource, details FROM audit_log"
            " WHERE request_id = %s ORDER BY id DESC LIMIT 1",
            request_id,
        )
        assert (action, outcome) == ("session.create", "failure")
        return str(err.value.details()), actor, {"resource": resource, **details}

    wrong_message, wrong_actor, wrong = await failed_login(caller.user.email, "not-the-password")
    unknown_message, unknown_actor, unknown = await failed_login(
        f"nobody-{uuid.uuid4().hex[:8]}@example.com", PASSWORD
    )
    # The caller learns nothing about which of the two it was...
    assert wrong_message == unknown_message == "invalid email or password"
    # ...the audit log does.
    assert (wrong_actor, wrong["resource"], wrong["reason"]) == (
        caller.user_id,
        f"users/{caller.user_id}",
        "wrong password",
    )
    assert (unknown_actor, unknown["resource"], unknown["reason"]) == (
        None,
        "users/-",
        "unknown email",
    )
    assert "email_sha256" in unknown and "@" not in unknown["email_sha256"]

    await identity.CreateSession(
        identity_pb2.CreateSessionRequest(email=caller.user.email, password=PASSWORD)
    )
    outcomes = await pg.rows(
        "SELECT outcome FROM audit_log WHERE action = 'session.create' AND actor_id = %s"
        " ORDER BY id",
        caller.user_id,
    )
    # Registration's login, the failure above, the login just now.
    assert [o for (o,) in outcomes] == ["success", "failure", "success"]


async def test_role_changes_are_audited_with_the_admin_as_actor(
    channel: grpc.aio.Channel, admin: Caller, caller: Caller, pg: Pg
) -> None:
    identity = identity_pb2_grpc.IdentityServiceStub(channel)
    await identity.SetUserRole(
        identity_pb2.SetUserRoleRequest(user_id=caller.user_id, role=access_pb2.ROLE_INSTRUCTOR),
        metadata=admin.metadata(),
    )
    rows = await pg.rows(
        "SELECT action, outcome, actor_id::text, details->>'role' FROM audit_log"
        " WHERE resource = %s AND action = 'user.role_change'",
        f"users/{caller.user_id}",
    )
    assert rows == [("user.role_change", "success", admin.user_id, "instructor")]
    # Refused by the access rules before any handler ran: nothing is written.
    student = await Caller.register(channel)
    async with fails(grpc.StatusCode.PERMISSION_DENIED, pg):
        await identity.SetUserRole(
            identity_pb2.SetUserRoleRequest(user_id=admin.user_id, role=access_pb2.ROLE_STUDENT),
            metadata=student.metadata(),
        )
