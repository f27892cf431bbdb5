"""Applies the Alembic migrations (alembic/) to the configured database.

`python -m storage.migrate` does it from the command line; the app calls `upgrade()` at start-up.
"""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from sqlalchemy import Engine, text

from alembic import command

ROOT = Path(__file__).resolve().parent.parent


def alembic_config() -> Config:
    """The Alembic configuration of this project (script location alembic/)."""
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "alembic"))
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
    from logs import configure_logging
    from settings import load_settings
    from storage.db import Database

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    database = Database(settings)
    upgrade(database.engine)
    database.dispose()
    print("migrations applied")


if __name__ == "__main__":
    main()
