"""Profiles and completion certificates: users get a bio and an avatar URL; a completed
enrollment gets one certificate with a public, unguessable id.

The certificate keeps the learner's name, the course title and the instructor's name as they
were at completion (a certificate records a moment; later renames do not rewrite it). The app
role gets the ordinary grants on the new table through 0003's default privileges.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE users
          ADD COLUMN bio text NOT NULL DEFAULT '' CHECK (char_length(bio) <= 1000),
          ADD COLUMN avatar_url text NOT NULL DEFAULT '' CHECK (char_length(avatar_url) <= 2048);

        CREATE TABLE certificates (
            id text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{22,64}$'),
            user_id uuid NOT NULL REFERENCES users (id),
            course_id uuid NOT NULL REFERENCES courses (id),
            learner_name text NOT NULL,
            course_title text NOT NULL,
            instructor_name text NOT NULL,
            completed_at timestamptz NOT NULL,
            issued_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT certificates_enrollment UNIQUE (user_id, course_id)
        );
        CREATE INDEX certificates_course ON certificates (course_id);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE certificates; ALTER TABLE users DROP COLUMN bio, DROP COLUMN avatar_url")
