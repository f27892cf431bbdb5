"""Alembic environment: runs migrations on the connection storage/migrate.py hands in."""

from __future__ import annotations

from alembic import context

from servicescheduler.storage.models import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    """Runs migrations on the given connection, or on one built from DATABASE_URL settings."""
    connection = context.config.attributes.get("connection")
    if connection is None:
        from servicescheduler.settings import load_settings
        from servicescheduler.storage.db import Database

        database = Database(load_settings())
        with database.engine.begin() as own_connection:
            _run(own_connection)
        database.dispose()
        return
    _run(connection)


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported: run `make migrate`")
run_migrations_online()
