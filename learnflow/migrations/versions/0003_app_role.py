"""The server runs as `learnflow_app`, a role that owns nothing and may only append to the
audit log and the outbox.

0001/0002's triggers refuse UPDATE/DELETE/TRUNCATE, but the owner of a table (or a superuser)
can drop or disable triggers. With the server connecting as this role, the audit log is
append-only by privilege as well: no UPDATE/DELETE/TRUNCATE grant on `audit_log` and `events`,
no ownership, no superuser, so neither the triggers nor `session_replication_role` can be
touched. Migrations keep running as the owner (LEARNFLOW_POSTGRES_MIGRATION_URL).

The role is created when missing and the migrating user may create roles (a private or
self-managed cluster); where roles are managed outside (a hosted PostgreSQL), create
`learnflow_app` first and this migration only grants. Authentication (password, certificate)
is the cluster's business: pg_hba.conf, not the schema.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

APP_ROLE = "learnflow_app"
APPEND_ONLY = ("audit_log", "events")


def upgrade() -> None:
    # Roles are cluster-wide: two databases migrating at once (parallel test sessions) may both
    # try to create it, hence the exception handler rather than a plain existence check.
    op.execute(
        f"""
        DO $$
        BEGIN
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}')
             AND (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user)
          THEN
            CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
          END IF;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
          NULL;
        END
        $$
        """
    )
    op.execute(f"GRANT CONNECT ON DATABASE {_database()} TO {APP_ROLE}")
    op.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE}")
    op.execute(f"REVOKE ALL ON alembic_version FROM {APP_ROLE}")
    op.execute(f"GRANT SELECT ON alembic_version TO {APP_ROLE}")
    for table in APPEND_ONLY:
        op.execute(f"REVOKE ALL ON {table} FROM {APP_ROLE}")
        op.execute(f"GRANT SELECT, INSERT ON {table} TO {APP_ROLE}")
    op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}")
    # Tables of later migrations get the ordinary grants; an append-only one must revoke.
    op.execute(
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {APP_ROLE}"
    )
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {APP_ROLE}"
    )


def downgrade() -> None:
    op.execute(
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
        f"REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM {APP_ROLE}"
    )
    op.execute(
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
        f"REVOKE USAGE, SELECT ON SEQUENCES FROM {APP_ROLE}"
    )
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {APP_ROLE}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {APP_ROLE}")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {APP_ROLE}")
    op.execute(f"REVOKE CONNECT ON DATABASE {_database()} FROM {APP_ROLE}")


def _database() -> str:
    name = op.get_bind().exec_driver_sql("SELECT current_database()").scalar_one()
    return '"' + str(name).replace('"', '""') + '"'
