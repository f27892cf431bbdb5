"""task_runs.attempt: which attempt of a run a row is (1 = the run itself, 2.. its retries).

Rows written before retries existed were all first attempts: the server default fills them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from servicescheduler.storage.table_names import CURRENT

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # After 0005 every database has the prefixed names.
    with op.batch_alter_table(CURRENT.table("task_runs"), schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempt", sa.Integer(), server_default="1", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table(CURRENT.table("task_runs"), schema=None) as batch_op:
        batch_op.drop_column("attempt")
