"""Account recovery by email: verified addresses, single-use account tokens, the mail outbox.

- `users.email_verified_at`: when the owner confirmed the address (a verification or reset
  link). Accounts made before this migration count as unverified: nobody ever proved them.
- `account_tokens`: password-reset and email-verification tokens, single use and expiring.
  Only the SHA-256 of a token is stored (256 random bits: no salt or slow hash needed), so
  a copy of the table opens no account. A reset request for an unknown address is recorded
  too (`user_id` NULL, a token nobody is sent): the request does the same work either way.
- `email_jobs`: the outbox of mail, written in the command's transaction and delivered by
  the server's sender (SKIP LOCKED claims, retries with backoff, `failed` after the last
  attempt). The bodies hold the links (raw tokens) only until the job is sent or failed;
  then they are scrubbed, the recipient and subject kept for the record. A `suppressed` job
  is one written without bodies and never sent: a reset request for an address without a
  usable account writes it, so that every request writes the same rows.

The app role gets the ordinary grants on both tables (0003's default privileges do this; they
are stated here as well, so the grant does not depend on who ran 0003).

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

APP_ROLE = "learnflow_app"


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE users ADD COLUMN email_verified_at timestamptz;

        CREATE TABLE account_tokens (
            id uuid PRIMARY KEY,
            purpose text NOT NULL
              CHECK (purpose IN ('password_reset', 'email_verification')),
            user_id uuid REFERENCES users (id),
            email text NOT NULL,
            token_hash bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL,
            used_at timestamptz
        );
        CREATE INDEX account_tokens_user ON account_tokens (user_id, purpose)
          WHERE used_at IS NULL;

        CREATE TABLE email_jobs (
            id uuid PRIMARY KEY,
            kind text NOT NULL,
            user_id uuid REFERENCES users (id),
            recipient text NOT NULL CHECK (char_length(recipient) <= 254),
            subject text NOT NULL,
            text_body text NOT NULL,
            html_body text NOT NULL,
            state text NOT NULL DEFAULT 'queued'
              CHECK (state IN ('queued', 'sent', 'failed', 'suppressed')),
            attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            next_attempt_at timestamptz NOT NULL DEFAULT now(),
            last_error text NOT NULL DEFAULT '',
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            sent_time timestamptz,
            CHECK ((state = 'sent') = (sent_time IS NOT NULL))
        );
        -- The sender's claim: queued jobs that are due, oldest first.
        CREATE INDEX email_jobs_due ON email_jobs (next_attempt_at) WHERE state = 'queued';
        CREATE INDEX email_jobs_failed ON email_jobs (updated_at) WHERE state = 'failed';
        """
    )
    for table in ("account_tokens", "email_jobs"):
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {APP_ROLE}")


def downgrade() -> None:
    op.execute(
        "DROP TABLE email_jobs; DROP TABLE account_tokens;"
        " ALTER TABLE users DROP COLUMN email_verified_at"
    )
