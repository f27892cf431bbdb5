"""events: drop ix_events_type, an index no query uses.

Every stored event paid for it: one more B-tree insert per row, about 2 µs per event on SQLite
(benchmark 7's store stage, 13.2 → 11.4 µs per event at 100,000 rows) and the same kind of work
on PostgreSQL. The only query that groups by type (the daily report) selects by `received_at`
first, which ix_events_received serves.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from alembic import context, op

from servicescheduler.storage.table_names import migration_layout

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    name = migration_layout(context.config.attributes)
    op.drop_index(name.index("ix_events_type"), table_name=name.table("events"))


def downgrade() -> None:
    name = migration_layout(context.config.attributes)
    op.create_index(name.index("ix_events_type"), name.table("events"), ["type"], unique=False)
