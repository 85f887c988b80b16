"""Which failures the interceptor answers UNAVAILABLE (a database away) rather than INTERNAL."""

from __future__ import annotations

import psycopg
import pytest
from pymongo.errors import AutoReconnect, ServerSelectionTimeoutError
from sqlalchemy.exc import OperationalError as SqlAlchemyOperationalError

from learnflow.storage.outages import unreachable_database


def _wrapped(orig: BaseException, invalidated: bool = False) -> SqlAlchemyOperationalError:
    return SqlAlchemyOperationalError("SELECT 1", {}, orig, connection_invalidated=invalidated)


@pytest.mark.parametrize(
    "exc",
    [
        psycopg.OperationalError("connection failed: Connection refused"),
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
        psycopg.errors.CannotConnectNow("the database system is starting up"),
        psycopg.errors.ConnectionFailure("connection failure"),
        _wrapped(psycopg.OperationalError("server closed the connection unexpectedly")),
        _wrapped(ValueError("anything"), invalidated=True),
    ],
)
def test_postgresql_going_away_is_unreachable(exc: BaseException) -> None:
    assert unreachable_database(exc) == "PostgreSQL"


def test_mongodb_connection_failures_are_unreachable() -> None:
    assert unreachable_database(AutoReconnect("connection reset")) == "MongoDB"
    assert unreachable_database(ServerSelectionTimeoutError("no servers")) == "MongoDB"


def test_a_cause_is_followed() -> None:
    outer = RuntimeError("while projecting")
    outer.__cause__ = psycopg.OperationalError("the connection is lost")
    assert unreachable_database(outer) == "PostgreSQL"


@pytest.mark.parametrize(
    "exc",
    [
        # An OperationalError subclass, but the statement's fault (a timeout), not the server's.
        psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
        psycopg.errors.SerializationFailure("could not serialize access"),
        _wrapped(psycopg.errors.QueryCanceled("canceling statement")),
        psycopg.errors.UniqueViolation("duplicate key"),
        ValueError("a bug"),
    ],
)
def test_everything_else_stays_a_bug(exc: BaseException) -> None:
    assert unreachable_database(exc) is None
