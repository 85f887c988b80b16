"""Initial schema: users, sessions, courses, lessons, enrollments, progress, comments,
audit log, outbox events, idempotency keys.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE users (
    id uuid PRIMARY KEY,
    email text NOT NULL CHECK (email = lower(email)),
    display_name text NOT NULL,
    role text NOT NULL CHECK (role IN ('student', 'instructor', 'admin')),
    password_hash bytea NOT NULL,
    disabled boolean NOT NULL DEFAULT false,
    -- Bumped to revoke every session at once; access tokens carry the version they saw.
    token_version integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE refresh_tokens (
    id uuid PRIMARY KEY,
    family_id uuid NOT NULL,
    user_id uuid NOT NULL REFERENCES users (id),
    token_hash bytea NOT NULL UNIQUE,
    issued_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz,
    revoked_at timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

CREATE TABLE courses (
    id uuid PRIMARY KEY,
    owner_id uuid NOT NULL REFERENCES users (id),
    title text NOT NULL,
    slug text NOT NULL UNIQUE,
    summary text NOT NULL DEFAULT '',
    tags text[] NOT NULL DEFAULT '{}',
    level text NOT NULL DEFAULT 'unspecified',
    state text NOT NULL DEFAULT 'draft' CHECK (state IN ('draft', 'published', 'archived')),
    capacity integer NOT NULL DEFAULT 0 CHECK (capacity >= 0),
    enrollment_open_at timestamptz,
    enrollment_close_at timestamptz,
    lesson_count integer NOT NULL DEFAULT 0,
    -- Maintained under the course row lock; the CHECK is the last line against overbooking.
    active_enrollment_count integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    CHECK (capacity = 0 OR active_enrollment_count <= capacity)
);
CREATE INDEX courses_owner ON courses (owner_id);

CREATE TABLE lessons (
    id uuid PRIMARY KEY,
    course_id uuid NOT NULL REFERENCES courses (id),
    title text NOT NULL,
    position integer NOT NULL CHECK (position >= 1),
    content_type text NOT NULL
        CHECK (content_type IN ('article', 'video', 'quiz', 'code_exercise')),
    content jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT lessons_course_position UNIQUE (course_id, position) DEFERRABLE INITIALLY DEFERRED
);

CREATE TABLE enrollments (
    course_id uuid NOT NULL REFERENCES courses (id),
    user_id uuid NOT NULL REFERENCES users (id),
    state text NOT NULL CHECK (state IN ('active', 'withdrawn', 'completed')),
    enrolled_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    PRIMARY KEY (course_id, user_id)
);
CREATE INDEX enrollments_user ON enrollments (user_id);

CREATE TABLE lesson_completions (
    user_id uuid NOT NULL REFERENCES users (id),
    course_id uuid NOT NULL REFERENCES courses (id),
    lesson_id uuid NOT NULL,
    completed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, course_id, lesson_id)
);

CREATE TABLE quiz_attempts (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id),
    course_id uuid NOT NULL REFERENCES courses (id),
    lesson_id uuid NOT NULL,
    score integer NOT NULL CHECK (score BETWEEN 0 AND 100),
    passed boolean NOT NULL,
    answers jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX quiz_attempts_user_lesson ON quiz_attempts (user_id, lesson_id);

CREATE TABLE comments (
    id uuid PRIMARY KEY,
    course_id uuid NOT NULL REFERENCES courses (id),
    lesson_id uuid NOT NULL,
    parent_id uuid REFERENCES comments (id),
    author_id uuid NOT NULL REFERENCES users (id),
    body text NOT NULL,
    deleted boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX comments_lesson ON comments (lesson_id, created_at);

-- Append-only: the trigger refuses UPDATE and DELETE whoever runs them.
CREATE TABLE audit_log (
    id bigserial PRIMARY KEY,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    actor_id uuid,
    action text NOT NULL,
    resource text NOT NULL,
    outcome text NOT NULL,
    request_id text NOT NULL DEFAULT '',
    client_address text NOT NULL DEFAULT '',
    details jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_actor ON audit_log (actor_id, id);
CREATE INDEX audit_log_action ON audit_log (action, id);

-- The outbox and event log. `txid` lets the projector read in commit-safe order: rows of
-- transactions older than every open one (pg_snapshot_xmin) are final, so it reads
-- `WHERE txid < xmin` in (txid, position) order and never skips a late committer.
CREATE TABLE events (
    position bigserial PRIMARY KEY,
    txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    event_type text NOT NULL,
    aggregate_type text NOT NULL,
    aggregate_id text NOT NULL,
    schema_version integer NOT NULL DEFAULT 1,
    payload jsonb NOT NULL,
    occurred_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_commit_order ON events (txid, position);

CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- Retried commands: the first result is stored under (principal, method, request_id).
CREATE TABLE idempotency_keys (
    principal text NOT NULL,
    method text NOT NULL,
    request_id text NOT NULL,
    request_fingerprint bytea NOT NULL,
    response bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (principal, method, request_id)
);
"""

DOWNGRADE = r"""
DROP TABLE idempotency_keys;
DROP TRIGGER events_no_truncate ON events;
DROP TRIGGER events_append_only ON events;
DROP TABLE events;
DROP TRIGGER audit_log_no_truncate ON audit_log;
DROP TRIGGER audit_log_append_only ON audit_log;
DROP TABLE audit_log;
DROP FUNCTION refuse_change();
DROP TABLE comments, quiz_attempts, lesson_completions, enrollments, lessons, courses,
    refresh_tokens, users;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
