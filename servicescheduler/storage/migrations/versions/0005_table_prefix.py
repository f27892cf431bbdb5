"""Prefixed names: every table (and its indexes and constraints) of a database created before the
prefix is renamed to `ss_<name>`, rows kept.

An application that embeds the service must not collide with its tables: `events`, `reports`,
`audit_log` and the default `alembic_version` are common names. A database created from
scratch gets the prefixed names from 0001-0004 already (storage/table_names.py) and this
revision does nothing; one that storage/migrate.py found in the legacy layout (its version row
in `alembic_version`, moved to `ss_alembic_version` before this runs) is renamed here.
SQLite cannot rename an index: those are dropped and created again under the new name.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import context, op

from servicescheduler.storage.table_names import CURRENT, LEGACY_LAYOUT_ATTRIBUTE

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

RUNNING = sa.text("outcome = 'running'")
# Every table at revision 0004, with its indexes: (name, columns, partial-index condition).
TABLES: dict[str, list[tuple[str, list[str], sa.TextClause | None]]] = {
    "task_state": [],
    "task_runs": [
        ("ix_task_runs_task_started", ["task", "started_at"], None),
        ("ix_task_runs_finished", ["finished_at"], None),
        ("ix_task_runs_running", ["outcome"], RUNNING),
    ],
    "audit_log": [("ix_audit_log_at", ["at"], None)],
    "notifications": [
        ("ix_notifications_due", ["status", "next_attempt_at"], None),
        ("ix_notifications_updated", ["updated_at"], None),
    ],
    "reports": [("ix_reports_created_at", ["created_at"], None)],
    "events": [("ix_events_received", ["received_at"], None)],
    "dead_letters": [("ix_dead_letters_created", ["created_at"], None)],
    "slot_claims": [("ix_slot_claims_claimed", ["claimed_at"], None)],
    "task_leases": [],
    "replicas": [],
    "control_version": [],
}
POSITION = ("uq_dead_letters_position", ["topic", "partition", "offset"])


def upgrade() -> None:
    if not context.config.attributes.get(LEGACY_LAYOUT_ATTRIBUTE):
        return  # created with the prefixed names: nothing to rename
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table, indexes in TABLES.items():
        renamed = CURRENT.table(table)
        op.rename_table(table, renamed)
        for index, columns, where in indexes:
            if postgresql:
                op.execute(f"ALTER INDEX {index} RENAME TO {CURRENT.index(index)}")
            else:
                op.drop_index(index, table_name=renamed)
                op.create_index(CURRENT.index(index), renamed, columns, unique=False, sqlite_where=where)
        if postgresql:
            _rename_implicit_names(table, renamed)
    constraint, columns = POSITION
    dead_letters = CURRENT.table("dead_letters")
    if postgresql:
        op.execute(f"ALTER TABLE {dead_letters} RENAME CONSTRAINT {constraint} TO {CURRENT.index(constraint)}")
    else:
        # A SQLite constraint lives in the table's definition: the table is copied with the new one.
        with op.batch_alter_table(dead_letters, recreate="always") as batch_op:
            batch_op.drop_constraint(constraint, type_="unique")
            batch_op.create_unique_constraint(CURRENT.index(constraint), columns)


def _rename_implicit_names(table: str, renamed: str) -> None:
    """PostgreSQL names a primary key, an unnamed unique constraint and a serial's sequence after
    the table (`events_pkey`, `audit_log_id_seq`): they take the prefix too, so that a host's own
    `events` table can be created beside ours."""
    bind = op.get_bind()
    regclass = {"table": renamed}
    constraints = bind.execute(
        sa.text("SELECT conname FROM pg_constraint WHERE conrelid = CAST(:table AS regclass)"), regclass
    ).scalars()
    for name in list(constraints):
        if name.startswith(table + "_"):
            op.execute(f"ALTER TABLE {renamed} RENAME CONSTRAINT {name} TO {CURRENT.table(name)}")
    sequences = bind.execute(
        sa.text(
            "SELECT s.relname FROM pg_class s JOIN pg_depend d ON d.objid = s.oid "
            "WHERE s.relkind = 'S' AND d.refobjid = CAST(:table AS regclass)"
        ),
        regclass,
    ).scalars()
    for name in list(sequences):
        if name.startswith(table + "_"):
            op.execute(f"ALTER SEQUENCE {name} RENAME TO {CURRENT.table(name)}")


def downgrade() -> None:
    # Nothing to undo: revisions 0001-0004 now create and alter the prefixed names themselves.
    pass
