"""notifications: trace_parent, the W3C traceparent of the message that created the row.

The webhook POST that delivers the notification sends it (servicescheduler/tracing.py), so the
delivery continues the trace the Kafka record's producer started. Nullable: rows made without
tracing (or before this revision) have none.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

# After 0005 every database has the prefixed names (the legacy layout ends there).
from servicescheduler.storage.table_names import CURRENT as name

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(name.table("notifications"), sa.Column("trace_parent", sa.String(length=55), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table(name.table("notifications")) as batch:
        batch.drop_column("trace_parent")
