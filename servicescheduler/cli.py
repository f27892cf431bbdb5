"""The `servicescheduler` console script. `servicescheduler migrate` applies the database
migrations to the database the settings name (DATABASE_URL, DATABASE_SCHEMA: the environment
and `.env`), for deployments that run them as a step of their own (MIGRATE_ON_START=false)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError

from servicescheduler.support.redact import mask_url_passwords

EXIT_FAILED = 1
EXIT_BAD_SETTINGS = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="servicescheduler",
        description="ServiceScheduler: periodic tasks and a durable Kafka consumer inside a service.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "migrate",
        help="apply the database migrations (DATABASE_URL, DATABASE_SCHEMA from the environment)",
        description="Applies the pending database migrations to the database the settings name; "
        "idempotent. Creates the DATABASE_SCHEMA schema on PostgreSQL if it is missing.",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status (0 done, 1 failed, 2 bad settings or usage)."""
    arguments = _parser().parse_args(argv)
    if arguments.command == "migrate":
        return _migrate()
    return EXIT_FAILED  # argparse refuses unknown commands before this


def _migrate() -> int:
    from servicescheduler.logs import configure_logging, get_logger
    from servicescheduler.settings import SettingsError, load_settings
    from servicescheduler.storage.db import Database
    from servicescheduler.storage.migrate import upgrade

    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"servicescheduler migrate: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    configure_logging(settings.log_level, settings.log_format)
    database = Database(settings)
    where = mask_url_passwords(settings.database_url) + (f" (schema {database.schema})" if database.schema else "")
    try:
        outcome = upgrade(database.engine)
    except SQLAlchemyError as exc:
        get_logger(__name__).error(
            "migrate_failed", database=where, error=mask_url_passwords(f"{type(exc).__name__}: {exc}")
        )
        print(f"servicescheduler migrate: failed on {where}: {type(exc).__name__}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        database.dispose()
    if outcome.adopted:
        print(f"moved the version row {outcome.before} from alembic_version to ss_alembic_version")
    if outcome.before == outcome.after:
        print(f"{where}: already at revision {outcome.after}, nothing to do")
    else:
        print(f"{where}: migrated from revision {outcome.before or 'none (empty)'} to {outcome.after}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
