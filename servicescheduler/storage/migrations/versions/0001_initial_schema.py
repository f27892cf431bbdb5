"""Initial schema: task state, run history, audit log, notifications, reports, events, dead letters.

Names come from storage/table_names.py: `ss_events`, `ix_ss_events_received`, ... (unprefixed
only for a database of the legacy layout, which 0005 renames).

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import context, op

from servicescheduler.storage.table_names import migration_layout

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    name = migration_layout(context.config.attributes)
    op.create_table(
        name.table("audit_log"),
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=80), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table(name.table("audit_log"), schema=None) as batch_op:
        batch_op.create_index(name.index("ix_audit_log_at"), ["at"], unique=False)

    op.create_table(
        name.table("dead_letters"),
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("topic", sa.String(length=249), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.LargeBinary(), nullable=True),
        sa.Column("value", sa.LargeBinary(), nullable=True),
        sa.Column("value_truncated", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("topic", "partition", "offset", name=name.index("uq_dead_letters_position")),
    )
    with op.batch_alter_table(name.table("dead_letters"), schema=None) as batch_op:
        batch_op.create_index(name.index("ix_dead_letters_created"), ["created_at"], unique=False)

    op.create_table(
        name.table("events"),
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("type", sa.String(length=128), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("key", sa.String(length=256), nullable=True),
        sa.Column("topic", sa.String(length=249), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table(name.table("events"), schema=None) as batch_op:
        batch_op.create_index(name.index("ix_events_received"), ["received_at"], unique=False)
        batch_op.create_index(name.index("ix_events_type"), ["type"], unique=False)

    op.create_table(
        name.table("notifications"),
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("recipient", sa.String(length=256), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    with op.batch_alter_table(name.table("notifications"), schema=None) as batch_op:
        batch_op.create_index(name.index("ix_notifications_due"), ["status", "next_attempt_at"], unique=False)
        batch_op.create_index(name.index("ix_notifications_updated"), ["updated_at"], unique=False)

    op.create_table(
        name.table("reports"),
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table(name.table("reports"), schema=None) as batch_op:
        batch_op.create_index(batch_op.f(name.index("ix_reports_created_at")), ["created_at"], unique=False)

    op.create_table(
        name.table("task_runs"),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("task", sa.String(length=80), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("run_id"),
    )
    with op.batch_alter_table(name.table("task_runs"), schema=None) as batch_op:
        batch_op.create_index(name.index("ix_task_runs_finished"), ["finished_at"], unique=False)
        batch_op.create_index(name.index("ix_task_runs_task_started"), ["task", "started_at"], unique=False)

    op.create_table(
        name.table("task_state"),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("interval_seconds", sa.Integer(), nullable=True),
        sa.Column("last_run_scheduled_for", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    name = migration_layout(context.config.attributes)
    op.drop_table(name.table("task_state"))
    with op.batch_alter_table(name.table("task_runs"), schema=None) as batch_op:
        batch_op.drop_index(name.index("ix_task_runs_task_started"))
        batch_op.drop_index(name.index("ix_task_runs_finished"))

    op.drop_table(name.table("task_runs"))
    with op.batch_alter_table(name.table("reports"), schema=None) as batch_op:
        batch_op.drop_index(batch_op.f(name.index("ix_reports_created_at")))

    op.drop_table(name.table("reports"))
    with op.batch_alter_table(name.table("notifications"), schema=None) as batch_op:
        batch_op.drop_index(name.index("ix_notifications_updated"))
        batch_op.drop_index(name.index("ix_notifications_due"))

    op.drop_table(name.table("notifications"))
    with op.batch_alter_table(name.table("events"), schema=None) as batch_op:
        batch_op.drop_index(name.index("ix_events_type"))
        batch_op.drop_index(name.index("ix_events_received"))

    op.drop_table(name.table("events"))
    with op.batch_alter_table(name.table("dead_letters"), schema=None) as batch_op:
        batch_op.drop_index(name.index("ix_dead_letters_created"))

    op.drop_table(name.table("dead_letters"))
    with op.batch_alter_table(name.table("audit_log"), schema=None) as batch_op:
        batch_op.drop_index(name.index("ix_audit_log_at"))

    op.drop_table(name.table("audit_log"))
