"""task_state: the pending retry of a task (retry_attempt, retry_due, retry_after_run).

A retry planned after a failed attempt is written with that attempt's end (storage/history.py)
and cleared when the retry runs or is dropped, so a restart or a dead replica does not lose it.
All nullable: no pending retry.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from servicescheduler.storage.table_names import CURRENT as name

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = name.table("task_state")
    op.add_column(table, sa.Column("retry_attempt", sa.Integer(), nullable=True))
    op.add_column(table, sa.Column("retry_due", sa.DateTime(timezone=True), nullable=True))
    op.add_column(table, sa.Column("retry_after_run", sa.String(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table(name.table("task_state")) as batch:
        batch.drop_column("retry_after_run")
        batch.drop_column("retry_due")
        batch.drop_column("retry_attempt")
