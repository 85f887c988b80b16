"""Events keep the W3C `traceparent` of the span that wrote them (NULL while tracing is off),
so that the projector's batch span can link to the commands whose events it applied.

Nullable, no default: adding it rewrites no row and takes only a brief lock.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("events", sa.Column("trace_parent", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("events", "trace_parent")
