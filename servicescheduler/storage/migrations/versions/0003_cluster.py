"""Cluster: slot claims, running leases, replicas, control version; run rows name their replica.

Revision ID: 0003
Revises: 0001 (re-chained after 0002 at merge)
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import context, op

from servicescheduler.storage.table_names import migration_layout

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    name = migration_layout(context.config.attributes)
    op.create_table(
        name.table("slot_claims"),
        sa.Column("task", sa.String(length=80), nullable=False),
        sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=False),
        sa.Column("replica", sa.String(length=64), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("task", "scheduled_for"),
    )
    op.create_index(name.index("ix_slot_claims_claimed"), name.table("slot_claims"), ["claimed_at"], unique=False)
    op.create_table(
        name.table("task_leases"),
        sa.Column("task", sa.String(length=80), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rerun", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("task"),
    )
    op.create_table(
        name.table("replicas"),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("partitions", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    control = op.create_table(
        name.table("control_version"),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(control, [{"id": 1, "version": 0}])
    with op.batch_alter_table(name.table("task_state"), schema=None) as batch_op:
        batch_op.add_column(sa.Column("version", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table(name.table("task_runs"), schema=None) as batch_op:
        batch_op.add_column(sa.Column("replica", sa.String(length=64), nullable=True))


def downgrade() -> None:
    name = migration_layout(context.config.attributes)
    with op.batch_alter_table(name.table("task_runs"), schema=None) as batch_op:
        batch_op.drop_column("replica")
    with op.batch_alter_table(name.table("task_state"), schema=None) as batch_op:
        batch_op.drop_column("version")
    op.drop_table(name.table("control_version"))
    op.drop_table(name.table("replicas"))
    op.drop_table(name.table("task_leases"))
    op.drop_index(name.index("ix_slot_claims_claimed"), table_name=name.table("slot_claims"))
    op.drop_table(name.table("slot_claims"))
