"""Append-only triggers fire in every session, including `session_replication_role = replica`.

0001's triggers are ordinary ones, which PostgreSQL skips in a replica-role session: any
role allowed to set it (the app's, when it is a superuser) could UPDATE or DELETE audit and
event rows with two statements. `ENABLE ALWAYS` closes that; only DDL on the tables (which
the migrations alone run) can still remove the triggers.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TRIGGERS = (
    ("audit_log", "audit_log_append_only"),
    ("audit_log", "audit_log_no_truncate"),
    ("events", "events_append_only"),
    ("events", "events_no_truncate"),
)


def upgrade() -> None:
    for table, trigger in TRIGGERS:
        op.execute(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {trigger}")


def downgrade() -> None:
    for table, trigger in TRIGGERS:
        op.execute(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}")
