"""One PostgreSQL transaction per command: domain rows + audit row + outbox event.

`Database.transaction()` yields a `UnitOfWork`; everything written through it commits or
rolls back together. The consistency token of a command is the commit-order key of the last
event it appended, `"<txid>.<position>"`, which the read side compares with its checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from google.protobuf.message import Message
from sqlalchemy import TextClause, Uuid, bindparam, select, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from learnflow import tracing
from learnflow.context import CallContext, current_call
from learnflow.errors import FieldViolation, InvalidArgument
from learnflow.events import AUDIT_RECORDED, SCHEMA_VERSION, EventType, PayloadT
from learnflow.positions import ZERO, EventKey
from learnflow.storage import tables

EVENTS_CHANNEL = "learnflow_events"

ResponseT = TypeVar("ResponseT", bound=Message)


class UnitOfWork:
    def __init__(self, conn: AsyncConnection, call: CallContext) -> None:
        self.conn = conn
        self.call = call
        self.consistency_token = ""
        self.changed_accounts: list[uuid.UUID] = []

    def account_changed(self, user_id: uuid.UUID) -> None:
        """Marks a change of what authenticates the user (role, disabled, token version):
        once the transaction commits, this process forgets what it cached of the account
        before its next call, not only when the database's announcement arrives."""
        self.changed_accounts.append(user_id)

    async def emit(
        self, event: EventType[PayloadT], aggregate_id: uuid.UUID | str, payload: PayloadT
    ) -> str:
        """Append a domain event to the outbox; returns its consistency token."""
        params: dict[str, Any] = {
            "event_type": event.name,
            "aggregate_type": event.aggregate_type,
            "aggregate_id": str(aggregate_id),
            "schema_version": SCHEMA_VERSION,
            "payload": payload,
        }
        statement = _EMIT
        traceparent = _traceparent()
        if traceparent is not None:
            statement, params["trace_parent"] = _EMIT_TRACED, traceparent
        return self._appended((await self.conn.execute(statement, params)).one())

    async def audit(
        self,
        action: str,
        resource: str,
        outcome: str = "success",
        details: dict[str, Any] | None = None,
        actor_id: uuid.UUID | None = None,
    ) -> None:
        """Append an audit row and its `audit.recorded` event (the audit read model is
        projected from the event log like every other one), in one statement: commands run
        this holding a row lock, and each round trip is lock time."""
        params = self._audit_params(action, resource, outcome, details, actor_id)
        statement = _AUDIT
        traceparent = _traceparent()
        if traceparent is not None:
            statement, params["trace_parent"] = _AUDIT_TRACED, traceparent
        self._appended((await self.conn.execute(statement, params)).one())

    async def audit_and_emit(
        self,
        action: str,
        resource: str,
        event: EventType[PayloadT],
        aggregate_id: uuid.UUID | str,
        payload: PayloadT,
        *,
        outcome: str = "success",
        details: dict[str, Any] | None = None,
        actor_id: uuid.UUID | None = None,
    ) -> str:
        """`audit(action, resource, outcome, details, actor_id)` then `emit(event,
        aggregate_id, payload)`, in one statement: the audit row, its `audit.recorded` event
        and `event`, appended in that order (the domain event's insert reads the audit event's
        row, so its position comes after). Returns the consistency token, `event`'s."""
        params = self._audit_params(action, resource, outcome, details, actor_id)
        params.update(
            then_event_type=event.name,
            then_aggregate_type=event.aggregate_type,
            then_aggregate_id=str(aggregate_id),
            then_payload=payload,
        )
        statement = _AUDIT_THEN_EMIT
        traceparent = _traceparent()
        if traceparent is not None:
            statement, params["trace_parent"] = _AUDIT_THEN_EMIT_TRACED, traceparent
        return self._appended((await self.conn.execute(statement, params)).one())

    def _audit_params(
        self,
        action: str,
        resource: str,
        outcome: str,
        details: dict[str, Any] | None,
        actor_id: uuid.UUID | None,
    ) -> dict[str, Any]:
        return {
            "actor_id": actor_id or self.call.actor_id,
            "action": action,
            "resource": resource,
            "outcome": outcome,
            "request_id": self.call.request_id,
            "client_address": self.call.client_address,
            "details": details or {},
            "event_type": AUDIT_RECORDED.name,
            "aggregate_type": AUDIT_RECORDED.aggregate_type,
            "schema_version": SCHEMA_VERSION,
        }

    def _appended(self, row: Any) -> str:
        self.consistency_token = EventKey(int(row[0]), int(row[1])).token()
        return self.consistency_token


def _traceparent() -> str | None:
    # The projector's batch span links to the span that wrote the event. Left out (not even
    # NULL) while tracing is off: the statement stays what it was.
    return tracing.current_traceparent() if tracing.tracer() is not None else None


# The event-appending statements are written once, as SQL: building them with the expression
# language on every call cost more CPU than the rest of a command (py-spy, UpdateCourse).
#
# What an event insert returns: its commit-order key, and the wake-up of the projector. The
# NOTIFY rides on every statement that appends events instead of costing a round trip of its
# own: PostgreSQL delivers it at commit (never if the transaction rolls back) and folds the
# duplicates of one transaction into one, so every committed transaction that appended an
# event notifies once, as the separate `NOTIFY` before COMMIT did.
_RETURNING = f" RETURNING txid::text, position, pg_notify('{EVENTS_CHANNEL}', '')"
_EVENT_COLUMNS = "event_type, aggregate_type, aggregate_id, schema_version, payload"


def _emit_statement(traced: bool) -> TextClause:
    columns, values = _EVENT_COLUMNS, ":event_type, :aggregate_type, :aggregate_id,"
    values += " :schema_version, :payload"
    if traced:
        columns, values = columns + ", trace_parent", values + ", :trace_parent"
    sql = f"INSERT INTO events ({columns}) VALUES ({values})" + _RETURNING
    return text(sql).bindparams(bindparam("payload", type_=JSONB))


# The audit row, and its event built from the inserted row. The payload has exactly the keys
# and value formats of `AuditPayload` (`learnflow.events`) as Python wrote them before: the id
# as a number, "" for no actor, and `occurred_at` as `datetime.isoformat()` writes the value
# psycopg reads (session time zone; microseconds only when there are any; offset +HH:MM).
_ISO = (
    "to_char(a.occurred_at, 'YYYY-MM-DD\"T\"HH24:MI:SS')"
    " || CASE WHEN a.occurred_at = date_trunc('second', a.occurred_at) THEN ''"
    " ELSE to_char(a.occurred_at, '.US') END"
    " || to_char(a.occurred_at, 'TZH:TZM')"
)
_AUDIT_PAYLOAD = (
    "jsonb_build_object('id', a.id, 'actor_id', coalesce(a.actor_id::text, ''),"
    " 'action', a.action, 'resource', a.resource, 'outcome', a.outcome,"
    " 'request_id', a.request_id, 'client_address', a.client_address,"
    f" 'occurred_at', {_ISO})"
)


def _audit_statement(traced: bool, then_emit: bool) -> TextClause:
    trace = ", trace_parent" if traced else ""
    traced_value = ", CAST(:trace_parent AS text)" if traced else ""
    sql = (
        "WITH a AS (INSERT INTO audit_log"
        " (actor_id, action, resource, outcome, request_id, client_address, details)"
        " VALUES (:actor_id, :action, :resource, :outcome, :request_id, :client_address,"
        " :details) RETURNING *)"
    )
    audit_event = (
        f"INSERT INTO events ({_EVENT_COLUMNS}{trace})"
        " SELECT CAST(:event_type AS text), CAST(:aggregate_type AS text), a.id::text,"
        f" CAST(:schema_version AS integer), {_AUDIT_PAYLOAD}{traced_value} FROM a"
    )
    if not then_emit:
        sql += f" {audit_event}{_RETURNING}"
    else:
        # The domain event is selected from the audit event's inserted row: it is appended
        # after it (positions in that order), as two `emit` calls would.
        sql += (
            f", r AS ({audit_event} RETURNING position)"
            f" INSERT INTO events ({_EVENT_COLUMNS}{trace})"
            " SELECT CAST(:then_event_type AS text), CAST(:then_aggregate_type AS text),"
            " CAST(:then_aggregate_id AS text), CAST(:schema_version AS integer),"
            f" :then_payload{traced_value} FROM r{_RETURNING}"
        )
    return text(sql).bindparams(
        bindparam("actor_id", type_=Uuid),
        bindparam("details", type_=JSONB),
        *([bindparam("then_payload", type_=JSONB)] if then_emit else []),
    )


_EMIT, _EMIT_TRACED = _emit_statement(False), _emit_statement(True)
_AUDIT, _AUDIT_TRACED = _audit_statement(False, False), _audit_statement(True, False)
_AUDIT_THEN_EMIT = _audit_statement(False, True)
_AUDIT_THEN_EMIT_TRACED = _audit_statement(True, True)


class Database:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # Called with each account a committed transaction changed (`account_changed`).
        self.account_listeners: list[Callable[[uuid.UUID], None]] = []

    @classmethod
    def connect(cls, url: str, pool_size: int = 10) -> Database:
        # No pre-ping: it costs a round trip on every checkout, i.e. on every authenticated call.
        # A connection the server dropped is detected when used (SQLAlchemy then invalidates the
        # whole pool), connections are recycled before idle timeouts, and the health watcher
        # reports an unreachable database.
        engine = create_async_engine(url, pool_size=pool_size, max_overflow=20, pool_recycle=900)
        tracing.instrument_engine(engine.sync_engine)  # nothing while tracing is off
        return cls(engine)

    async def close(self) -> None:
        await self.engine.dispose()

    async def event_log_head(self) -> EventKey:
        """The commit-order key of the last committed event (ZERO when there is none): no
        command ever returned a consistency token beyond it."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT txid::text::bigint, position FROM events"
                        " ORDER BY events.txid DESC, events.position DESC LIMIT 1"
                    )
                )
            ).first()
        return EventKey(int(row[0]), int(row[1])) if row else ZERO

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[UnitOfWork]:
        async with self.engine.begin() as conn:
            uow = UnitOfWork(conn, current_call())
            yield uow
            # No NOTIFY here: every event insert carries its own (`_APPENDED`).
        for user_id in uow.changed_accounts:  # committed
            for listener in self.account_listeners:
                listener(user_id)

    async def audit_alone(
        self,
        action: str,
        resource: str,
        outcome: str,
        details: dict[str, Any] | None = None,
        actor_id: uuid.UUID | None = None,
    ) -> None:
        """Audit a failure in its own transaction: the command's own one was rolled back."""
        async with self.transaction() as uow:
            await uow.audit(action, resource, outcome, details, actor_id=actor_id)

    async def run_command(
        self,
        request: Message,
        request_id: str,
        response_type: type[ResponseT],
        handler: Callable[[UnitOfWork], Awaitable[ResponseT]],
    ) -> ResponseT:
        """Run `handler` in one transaction; a retry with the same `request_id` returns the
        first response and writes nothing.

        The idempotency row is inserted first: a concurrent retry blocks on its primary key
        until the first transaction ends, then reads the stored response (or, if the first
        rolled back, runs the command itself).
        """
        call = current_call()
        if len(request_id) > 128:
            raise InvalidArgument([FieldViolation("request_id", "must be at most 128 characters")])
        async with self.transaction() as uow:
            if request_id:
                principal = str(call.actor_id) if call.actor_id else "anonymous"
                fingerprint = _fingerprint(request)
                claimed = (
                    await uow.conn.execute(
                        text(
                            "INSERT INTO idempotency_keys"
                            " (principal, method, request_id, request_fingerprint)"
                            " VALUES (:p, :m, :r, :f) ON CONFLICT DO NOTHING RETURNING 1"
                        ),
                        {"p": principal, "m": call.method, "r": request_id, "f": fingerprint},
                    )
                ).first()
                if claimed is None:
                    stored = (
                        await uow.conn.execute(
                            select(
                                tables.idempotency_keys.c.request_fingerprint,
                                tables.idempotency_keys.c.response,
                            ).where(
                                tables.idempotency_keys.c.principal == principal,
                                tables.idempotency_keys.c.method == call.method,
                                tables.idempotency_keys.c.request_id == request_id,
                            )
                        )
                    ).one()
                    if bytes(stored.request_fingerprint) != fingerprint:
                        raise InvalidArgument(
                            [FieldViolation("request_id", "already used for a different request")]
                        )
                    return response_type.FromString(bytes(stored.response))
            response = await handler(uow)
            if request_id:
                await uow.conn.execute(
                    update(tables.idempotency_keys)
                    .where(
                        tables.idempotency_keys.c.principal == principal,
                        tables.idempotency_keys.c.method == call.method,
                        tables.idempotency_keys.c.request_id == request_id,
                    )
                    .values(response=response.SerializeToString(deterministic=True))
                )
            return response


def _fingerprint(request: Message) -> bytes:
    # Deterministic serialisation of the request without its request_id.
    copy = type(request)()
    copy.CopyFrom(request)
    if "request_id" in {f.name for f in copy.DESCRIPTOR.fields}:
        copy.ClearField("request_id")
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).digest()


def to_json(value: Any) -> Any:
    """Round-trip through JSON so payloads hold only JSON types (UUIDs and datetimes as str)."""
    return json.loads(json.dumps(value, default=str))
