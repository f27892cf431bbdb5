"""The database the soaked server uses, and how the harness reads it: a SQLite file in the soak's
temp directory (default) or a fresh PostgreSQL database (`--postgres`: BENCH_DATABASE_URL's server,
else a throw-away cluster from devtools/postgres.py).

The harness reads with plain DB-API connections (sqlite3 read-only, psycopg), never the app's
models, and counts the server's database connections: SQLite from /proc (descriptors on the file,
see bench.soak.probe), PostgreSQL from pg_stat_activity.
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from pathlib import Path
from typing import Any


class SqliteTarget:
    """A SQLite file in `workdir`."""

    name = "SQLite"

    def __init__(self, workdir: Path) -> None:
        self.file: Path | None = workdir / "soak.db"
        self.url = f"sqlite:///{self.file}"

    def connect(self) -> Any:
        # Read-only; in WAL mode a reader never blocks the server's writer.
        return sqlite3.connect(f"file:{self.file}?mode=ro", uri=True, timeout=5)

    def server_connections(self) -> int | None:
        return None  # read from /proc by the probe

    def sizes(self) -> dict[str, float | None]:
        """Size of the database file and of its write-ahead log, MiB."""
        assert self.file is not None
        return {"db_mib": _file_mib(self.file), "wal_mib": _file_mib(Path(f"{self.file}-wal"))}

    def drop(self) -> None:
        """Nothing to do: the file goes with the temp directory."""


class PostgresTarget:
    """A database created for this soak on a PostgreSQL server, dropped by `drop()`."""

    name = "PostgreSQL"

    def __init__(self, server_url: str) -> None:
        from devtools.postgres import create_database

        self.file = None
        self._server = server_url
        self._name = f"soak_{uuid.uuid4().hex[:10]}"
        self.url = create_database(server_url, self._name)
        self._plain = re.sub(r"^postgresql\+\w+://", "postgresql://", self.url)

    def connect(self) -> Any:
        import psycopg

        return psycopg.connect(self._plain, connect_timeout=5)

    def server_connections(self) -> int | None:
        """Sessions on this database other than the one asking."""
        try:
            conn = self.connect()
        except Exception:  # noqa: BLE001 (a sample without the figure, not a failed soak)
            return None
        try:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
            return int(row[0])
        finally:
            conn.close()

    def sizes(self) -> dict[str, float | None]:
        """pg_database_size of this database, MiB."""
        try:
            conn = self.connect()
        except Exception:  # noqa: BLE001 (a sample without the figure, not a failed soak)
            return {"db_mib": None}
        try:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
            return {"db_mib": round(int(row[0]) / 2**20, 2)}
        finally:
            conn.close()

    def drop(self) -> None:
        from devtools.postgres import drop_database

        drop_database(self._server, self._name)


def _file_mib(path: Path) -> float | None:
    try:
        return round(path.stat().st_size / 2**20, 2)
    except OSError:
        return None


def open_target(postgres: bool, workdir: Path) -> SqliteTarget | PostgresTarget:
    """The database for one soak; raises RuntimeError when PostgreSQL was asked for and is missing."""
    if not postgres:
        return SqliteTarget(workdir)
    from bench.postgres import postgres_server

    server, reason = postgres_server()
    if server is None:
        raise RuntimeError(reason or "no PostgreSQL server")
    return PostgresTarget(server)


def stop_postgres() -> None:
    """Stops the throw-away cluster, if this process started one."""
    from bench.postgres import shutdown

    shutdown()
