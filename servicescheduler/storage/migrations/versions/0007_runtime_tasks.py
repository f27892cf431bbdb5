"""Tasks created at runtime (ss_runtime_tasks) and a cron override on task_state (PATCH trigger).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

# After 0005 every database has the prefixed names, a legacy one included.
from servicescheduler.storage.table_names import CURRENT as name

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        name.table("runtime_tasks"),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("function", sa.String(length=80), nullable=False),
        sa.Column("trigger", sa.JSON(), nullable=False),
        sa.Column("kwargs", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("retries", sa.Integer(), server_default="0", nullable=False),
        sa.Column("retry_backoff", sa.Float(), server_default="10", nullable=False),
        sa.Column("checkin_url", sa.String(length=2048), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table(name.table("task_state"), schema=None) as batch_op:
        batch_op.add_column(sa.Column("cron_override", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table(name.table("task_state"), schema=None) as batch_op:
        batch_op.drop_column("cron_override")
    op.drop_table(name.table("runtime_tasks"))
