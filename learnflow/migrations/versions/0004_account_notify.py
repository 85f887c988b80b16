"""Every change of what authenticates a user (role, disabled, token version) is announced on
the `learnflow_accounts` channel, with the user's id, when its transaction commits.

Server processes cache each account's state so that authenticated calls need no database
round trip; this trigger is how every process learns at once that an entry is stale, whatever
code path (a command, an operator's SQL) changed the row.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION notify_account_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          PERFORM pg_notify('learnflow_accounts', NEW.id::text);
          RETURN NULL;
        END $$;

        CREATE TRIGGER users_account_changed
          AFTER UPDATE OF role, disabled, token_version ON users
          FOR EACH ROW
          WHEN (OLD.role IS DISTINCT FROM NEW.role
                OR OLD.disabled IS DISTINCT FROM NEW.disabled
                OR OLD.token_version IS DISTINCT FROM NEW.token_version)
          EXECUTE FUNCTION notify_account_changed();
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP TRIGGER users_account_changed ON users; DROP FUNCTION notify_account_changed()"
    )
