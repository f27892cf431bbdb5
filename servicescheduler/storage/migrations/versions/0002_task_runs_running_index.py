"""Runs in progress: a partial index on task_runs.outcome = 'running'.

A run's start is now stored (outcome `running`) and updated when it ends; at start-up, rows still
`running` (left by a killed process) are closed as `interrupted`. The index keeps that scan to
those few rows instead of the whole run history.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import context, op

from servicescheduler.storage.table_names import migration_layout

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

RUNNING = sa.text("outcome = 'running'")


def upgrade() -> None:
    name = migration_layout(context.config.attributes)
    op.create_index(
        name.index("ix_task_runs_running"),
        name.table("task_runs"),
        ["outcome"],
        unique=False,
        postgresql_where=RUNNING,
        sqlite_where=RUNNING,
    )


def downgrade() -> None:
    name = migration_layout(context.config.attributes)
    op.drop_index(name.index("ix_task_runs_running"), table_name=name.table("task_runs"))
