"""Which failures mean "a database is unreachable" rather than "this call is wrong".

A call that fails because PostgreSQL or MongoDB is down, restarting or dropped its connection
is answered UNAVAILABLE (retryable, with RetryInfo) by the interceptor, not INTERNAL: clients
and the gateway retry it, and nothing about it is a bug to report. Everything else stays
INTERNAL so that real bugs are not hidden behind a retryable code.
"""

from __future__ import annotations

import psycopg
from pymongo.errors import ConnectionFailure
from sqlalchemy.exc import DBAPIError

# SQLSTATEs of a server going away: class 08 (connection exception) and the shutdown family
# (57P01 admin_shutdown: `pg_ctl stop -m fast`; 57P02 crash_shutdown; 57P03 cannot_connect_now:
# starting up or in recovery).
_GOING_AWAY = ("57P01", "57P02", "57P03")


def unreachable_database(exc: BaseException) -> str | None:
    """Which database `exc` shows unreachable: "PostgreSQL" or "MongoDB" when it (or what it
    wraps) is such a failure, else None. A psycopg error without SQLSTATE is one of the client
    side: connection refused, closed or lost."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError):
            if current.connection_invalidated:
                return "PostgreSQL"
            current = current.orig
            continue
        if isinstance(current, psycopg.OperationalError):
            state = current.sqlstate
            if state is None or state.startswith("08") or state in _GOING_AWAY:
                return "PostgreSQL"
            return None
        if isinstance(current, ConnectionFailure):
            return "MongoDB"
        current = current.__cause__
    return None
