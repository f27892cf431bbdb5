"""Applies the Alembic migrations (shipped in `migrations/`, package data) to a database.

`servicescheduler migrate` (or `python -m servicescheduler.storage.migrate`) does it from the
command line; a ServiceScheduler calls `upgrade()` at start-up unless told not to.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    """The Alembic configuration of the package: no ini file, the scripts beside this module."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrates the database behind `engine` to `revision` (idempotent)."""
    config = alembic_config()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Replicas start together: one migrates, the others wait here, then find nothing to do.
            connection.execute(text("SELECT pg_advisory_xact_lock(74290311)"))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def main() -> None:
    """Command-line entry: migrate the database named by the settings."""
    from servicescheduler.logs import configure_logging
    from servicescheduler.settings import load_settings
    from servicescheduler.storage.db import Database

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    database = Database(settings)
    upgrade(database.engine)
    database.dispose()
    print("migrations applied")


if __name__ == "__main__":
    main()
