"""Alembic environment: runs migrations on the connection storage/migrate.py hands in, keeping
the version in the service's own table (`ss_alembic_version`, never a host's `alembic_version`)."""

from __future__ import annotations

from alembic import context

from servicescheduler.storage.models import Base
from servicescheduler.storage.table_names import VERSION_TABLE, VERSION_TABLE_ATTRIBUTE

target_metadata = Base.metadata


def run_migrations_online() -> None:
    """Runs migrations on the connection storage/migrate.py put in the config."""
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise SystemExit("run migrations with `servicescheduler migrate`")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        # Tests build a database of the legacy layout (version row in `alembic_version`).
        version_table=context.config.attributes.get(VERSION_TABLE_ATTRIBUTE, VERSION_TABLE),
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported: run `servicescheduler migrate`")
run_migrations_online()
