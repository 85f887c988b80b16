"""The server's database role (`learnflow_app`, migration 0003) may append to the audit log and
the outbox but not change, remove or unprotect them: enforced by PostgreSQL privileges on top
of the append-only triggers (tests/test_commands_audit.py runs those as the owner)."""

from __future__ import annotations

import psycopg
import pytest

from learnflow.settings import Settings
from tests.commands_support import Pg
from tests.support import Caller


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture
def owner(postgres_url: str) -> Pg:
    return Pg(postgres_url)


async def test_the_server_connects_as_the_unprivileged_app_role(settings: Settings) -> None:
    async with await psycopg.AsyncConnection.connect(libpq(settings.postgres_url)) as conn:
        row = await (
            await conn.execute(
                "SELECT current_user, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls "
                "FROM pg_roles WHERE rolname = current_user"
            )
        ).fetchone()
    assert row == ("learnflow_app", False, False, False, False)


TAMPERING = [
    "UPDATE audit_log SET outcome = 'success'",
    "DELETE FROM audit_log",
    "TRUNCATE audit_log",
    "UPDATE events SET payload = '{}'",
    "DELETE FROM events",
    "TRUNCATE events",
    "ALTER TABLE audit_log DISABLE TRIGGER ALL",
    "DROP TRIGGER audit_log_append_only ON audit_log",
    "ALTER TABLE events DISABLE TRIGGER events_append_only",
    "SET session_replication_role = replica",
    "DELETE FROM alembic_version",
]


@pytest.mark.parametrize("sql", TAMPERING)
async def test_the_app_role_cannot_tamper_with_the_logs(
    caller: Caller, settings: Settings, owner: Pg, sql: str
) -> None:
    before = await owner.counts()  # `caller` registered and logged in: audit rows exist
    triggers = await owner.rows(
        "SELECT tgname, tgenabled FROM pg_trigger WHERE NOT tgisinternal ORDER BY tgname"
    )
    async with await psycopg.AsyncConnection.connect(
        libpq(settings.postgres_url), autocommit=True
    ) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as err:
            await conn.execute(sql)
    message = str(err.value)
    assert "permission denied" in message or "must be owner" in message, message
    assert await owner.counts() == before
    assert (
        await owner.rows(
            "SELECT tgname, tgenabled FROM pg_trigger WHERE NOT tgisinternal ORDER BY tgname"
        )
        == triggers
    )


async def test_the_app_role_appends_and_reads(settings: Settings, caller: Caller) -> None:
    """The control case: the same role does write the domain and the logs (the caller's
    registration and login went through it) and may read them."""
    async with await psycopg.AsyncConnection.connect(libpq(settings.postgres_url)) as conn:
        audited = await (
            await conn.execute(
                "SELECT count(*) FROM audit_log WHERE actor_id = %s", (caller.user_id,)
            )
        ).fetchone()
    assert audited is not None and audited[0] >= 1
