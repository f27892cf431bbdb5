"""The names of the service's tables: every one starts with TABLE_PREFIX, so that the library,
embedded in a host application, never collides with the host's own `events`, `reports`,
`alembic_version`, ... Isolation beyond the prefix is a PostgreSQL schema (DATABASE_SCHEMA).

The prefix is fixed: a configurable one would need SQLAlchemy metadata per instance. Databases
created before the prefix ("the legacy layout", revisions 0001-0004, version row in
`alembic_version`) are renamed in place by migration 0005 (storage/migrate.py adopts their row).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TABLE_PREFIX = "ss_"
VERSION_TABLE = TABLE_PREFIX + "alembic_version"
LEGACY_VERSION_TABLE = "alembic_version"
# Revisions written by this service into `alembic_version` before it had its own version table:
# only a row holding one of these is ours to move (a host's own alembic_version is never touched).
LEGACY_REVISIONS = frozenset({"0001", "0002", "0003", "0004"})
# Alembic config attributes (set by storage/migrate.py, read by migrations/env.py and the scripts).
LEGACY_LAYOUT_ATTRIBUTE = "servicescheduler_legacy_layout"
VERSION_TABLE_ATTRIBUTE = "servicescheduler_version_table"


@dataclass(frozen=True)
class Layout:
    """How the migration scripts name a table, an index (`ix_<table>_...`) or a constraint."""

    prefix: str

    def table(self, name: str) -> str:
        """`events` -> `ss_events`."""
        return self.prefix + name

    def index(self, name: str) -> str:
        """`ix_events_received` -> `ix_ss_events_received` (likewise `uq_...`)."""
        kind, _, rest = name.partition("_")
        return f"{kind}_{self.prefix}{rest}"


CURRENT = Layout(TABLE_PREFIX)
LEGACY = Layout("")


def migration_layout(attributes: dict[str, Any]) -> Layout:
    """The layout the migration scripts of this run create and alter (from the Alembic config)."""
    return LEGACY if attributes.get(LEGACY_LAYOUT_ATTRIBUTE) else CURRENT


def logical_name(table: str) -> str:
    """`ss_events` -> `events`: the name reports and results show, whatever the stored name."""
    return table.removeprefix(TABLE_PREFIX)
