"""What a command does while it holds a course row lock (issue 13, goal 4): throughput on one
hot row is 1 / (time the lock is held), and every statement sent under it is a round trip.

UpdateCourse checks the course as read without a lock, then sends the `UPDATE … RETURNING`
of the course with its owner's name, which takes the row lock and writes only if the row
still has what the checks read; under the lock, only ONE statement follows before COMMIT: the
audit row, its `audit.recorded` event and the `course.updated` event, whose `pg_notify` wakes
the projector at commit (first: `SELECT … FOR UPDATE`, then UPDATE, a reload SELECT, the audit
INSERT, two event INSERTs and a NOTIFY). The events, their payloads, their order and the
consistency token are what they were.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import grpc
import psycopg
import pytest
from google.protobuf import field_mask_pb2
from sqlalchemy import event, text

from learnflow.commands.course_records import load_course, update_course_as_seen
from learnflow.context import Principal
from learnflow.server import Backend
from learnflow.storage.unit_of_work import EVENTS_CHANNEL
from learnflow.v1 import courses_pb2
from tests.commands_support import Pg, courses, new_course, published_course
from tests.support import Caller


@contextmanager
def statements_under_lock(backend: Backend) -> Iterator[list[list[str]]]:
    """Per transaction that took a course row lock (`FOR UPDATE`, or an UPDATE of courses):
    the statements the server sent on that connection from the lock up to COMMIT, the lock's
    own statement first."""
    engine = backend.db.engine.sync_engine
    open_: dict[int, list[str]] = {}
    done: list[list[str]] = []

    def sent(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        key = id(conn)
        if key in open_:
            open_[key].append(statement)
        elif "FOR UPDATE" in statement or statement.startswith("UPDATE courses"):
            open_[key] = [statement]

    def committed(conn: Any) -> None:
        if id(conn) in open_:
            done.append(open_.pop(id(conn)))

    def rolled_back(conn: Any) -> None:
        open_.pop(id(conn), None)

    event.listen(engine, "before_cursor_execute", sent)
    event.listen(engine, "commit", committed)
    event.listen(engine, "rollback", rolled_back)
    try:
        yield done
    finally:
        event.remove(engine, "before_cursor_execute", sent)
        event.remove(engine, "commit", committed)
        event.remove(engine, "rollback", rolled_back)


def rename(course_id: str, title: str) -> courses_pb2.UpdateCourseRequest:
    return courses_pb2.UpdateCourseRequest(
        course=courses_pb2.Course(id=course_id, title=title),
        update_mask=field_mask_pb2.FieldMask(paths=["title"]),
    )


async def test_update_course_sends_one_statement_under_the_row_lock(
    instructor: Caller, backend: Backend
) -> None:
    course, _ = await published_course(instructor)  # as bench/read_path.py's hot course
    with statements_under_lock(backend) as locked:
        reply = await courses(instructor.channel).UpdateCourse(
            rename(course.id, "One statement"), metadata=instructor.metadata()
        )
    assert reply.course.title == "One statement"
    [sent] = locked
    assert len(sent) == 2, sent
    update, appended = sent  # the UPDATE took the lock; one statement follows it
    assert update.startswith("UPDATE courses") and "FROM users" in update and "RETURNING" in update
    # It writes only the row the checks saw (owner, state, enrollment window).
    for column in ("owner_id", "state", "enrollment_open_at", "enrollment_close_at"):
        assert f"courses.{column}" in update.split("WHERE", 1)[1], column
    assert appended.count("INSERT INTO audit_log") == 1
    assert appended.count("INSERT INTO events") == 2
    assert "pg_notify" in appended
    assert not any(s.lstrip().upper().startswith("NOTIFY") for s in sent)


async def test_renaming_a_draft_updates_its_slug_in_the_same_statement(
    instructor: Caller, backend: Backend
) -> None:
    """A draft's slug follows its title: the UPDATE sets both, in a savepoint (a colliding
    slug is retried), and still returns the row the events are built from."""
    course = await new_course(instructor)
    with statements_under_lock(backend) as locked:
        reply = await courses(instructor.channel).UpdateCourse(
            rename(course.id, "Renamed draft"), metadata=instructor.metadata()
        )
    assert reply.course.slug.startswith("renamed-draft") and reply.course.slug != course.slug
    [sent] = locked
    assert [s.split()[0] for s in sent] == ["SELECT", "SAVEPOINT", "UPDATE", "RELEASE", "WITH"]
    assert "FOR UPDATE" in sent[0]


async def test_update_course_events_order_payloads_and_token_are_unchanged(
    instructor: Caller, pg: Pg
) -> None:
    course = await new_course(instructor)
    reply = await courses(instructor.channel).UpdateCourse(
        rename(course.id, "Same events"), metadata=instructor.metadata()
    )
    [audit_row] = await pg.rows(
        "SELECT id, actor_id, action, resource, outcome, request_id, client_address,"
        " occurred_at, details FROM audit_log WHERE resource = %s AND action = 'course.update'",
        f"courses/{course.id}",
    )
    events = await pg.rows(
        "SELECT txid::text, position, event_type, aggregate_id, payload FROM events"
        " WHERE txid = (SELECT txid FROM events WHERE aggregate_id = %s"
        " AND event_type = 'course.updated') ORDER BY position",
        course.id,
    )
    assert [e[2] for e in events] == ["audit.recorded", "course.updated"]
    (txid, audit_position, _, audit_aggregate, audit_payload), last = events
    assert last[0] == txid
    assert last[1] > audit_position
    # The token is the last event's commit-order key.
    assert reply.consistency_token == f"{last[0]}.{last[1]}"
    # The payload built in SQL is exactly the one Python built from the row before.
    (id_, actor, action, resource, outcome, request_id, address, occurred_at, details) = audit_row
    assert audit_aggregate == str(id_)
    assert audit_payload == {
        "id": id_,
        "actor_id": str(actor),
        "action": action,
        "resource": resource,
        "outcome": outcome,
        "request_id": request_id,
        "client_address": address,
        "occurred_at": occurred_at.isoformat(),
    }
    assert details == {"fields": ["title"]}
    assert last[4]["title"] == "Same events"
    assert last[4]["owner_name"] == reply.course.instructor_name != ""


async def test_each_committed_command_notifies_the_projector_once(
    instructor: Caller, pg: Pg
) -> None:
    course = await new_course(instructor)
    async with await psycopg.AsyncConnection.connect(pg.url, autocommit=True) as listener:
        await listener.execute(f"LISTEN {EVENTS_CHANNEL}")
        for n in range(3):
            await courses(instructor.channel).UpdateCourse(
                rename(course.id, f"Notified {n}"), metadata=instructor.metadata()
            )
        received = [note async for note in listener.notifies(timeout=2.0)]
    # Three transactions of three events each (audit, course.updated): one notification per
    # transaction, not per event; nothing else writes to this test session's database now.
    assert [(n.channel, n.payload) for n in received] == [(EVENTS_CHANNEL, "")] * 3


async def test_a_course_changed_since_it_was_read_is_not_written(
    instructor: Caller, backend: Backend
) -> None:
    """The unlocked checks hold only while the row is as they saw it: the UPDATE writes
    nothing when the owner, the state or the window changed, or when a new capacity would
    fall below the active enrollments by now (UpdateCourse then locks and checks again)."""
    course, _ = await published_course(instructor)
    course_id = uuid.UUID(course.id)
    async with backend.db.engine.connect() as conn:  # never committed
        seen = await load_course(conn, course_id, Principal(uuid.uuid4(), "admin"))
        stale = [
            SimpleNamespace(**{**seen._mapping, "state": "draft"}),
            SimpleNamespace(**{**seen._mapping, "owner_id": uuid.uuid4()}),
            SimpleNamespace(**{**seen._mapping, "enrollment_close_at": dt.datetime.now(dt.UTC)}),
        ]
        for row in stale:
            assert await update_course_as_seen(conn, row, title="Not written") is None
        await conn.execute(
            text("UPDATE courses SET active_enrollment_count = 3 WHERE id = :id"),
            {"id": course_id},
        )
        fuller = await load_course(conn, course_id, Principal(uuid.uuid4(), "admin"))
        assert await update_course_as_seen(conn, fuller, capacity=2) is None
        assert (await load_course(conn, course_id, Principal(uuid.uuid4(), "admin"))).title == (
            course.title
        )
        written = await update_course_as_seen(conn, fuller, capacity=3, title="Written")
        assert written is not None and (written.title, written.capacity) == ("Written", 3)
        await conn.rollback()


async def test_update_course_checks_again_under_the_lock_when_the_row_moved(
    instructor: Caller, backend: Backend, pg: Pg
) -> None:
    """A course archived between UpdateCourse's unlocked read and its UPDATE: the UPDATE
    writes nothing, the locked way reads the archived row and refuses."""
    course, _ = await published_course(instructor)
    engine = backend.db.engine.sync_engine
    archived: list[bool] = []

    def archive_before_the_update(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("UPDATE courses") and not archived:
            archived.append(True)
            with psycopg.connect(pg.url, autocommit=True) as other:
                other.execute("UPDATE courses SET state = 'archived' WHERE id = %s", (course.id,))

    event.listen(engine, "before_cursor_execute", archive_before_the_update)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await courses(instructor.channel).UpdateCourse(
                rename(course.id, "Too late"), metadata=instructor.metadata()
            )
    finally:
        event.remove(engine, "before_cursor_execute", archive_before_the_update)
    [[title, state]] = await pg.rows("SELECT title, state FROM courses WHERE id = %s", course.id)
    # The archive above bypassed the event log: put the row back as the read models know it
    # (the session's integrity test compares every course with its read model).
    with psycopg.connect(pg.url, autocommit=True) as other:
        other.execute("UPDATE courses SET state = 'published' WHERE id = %s", (course.id,))
    assert archived == [True]
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "archived" in (refused.value.details() or "")
    assert (title, state) == (course.title, "archived")
