"""Throw-away PostgreSQL for the test suite (when TEST_DATABASE_URL is not set).

Wraps ``scripts/pg-cluster.sh``: a cluster in a temp dir, trust auth, 127.0.0.1,
a free port. ``stop_postgres``/``start_postgres`` take the server away and bring
it back on the same port with the same data, to test database outages.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql

REPO_ROOT = Path(__file__).resolve().parents[1]
PG_CLUSTER_SCRIPT = REPO_ROOT / "scripts" / "pg-cluster.sh"
_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def postgres_available() -> bool:
    """Return True when initdb/pg_ctl exist (on PATH or Debian's layout) and can be run here."""
    found = bool(shutil.which("initdb") and shutil.which("pg_ctl")) or any(
        os.access(Path(d) / "initdb", os.X_OK) and os.access(Path(d) / "pg_ctl", os.X_OK)
        for d in glob.glob("/usr/lib/postgresql/*/bin")
    )
    if not found or shutil.which("bash") is None or shutil.which("python3") is None:
        return False
    if os.geteuid() == 0:  # root must hand the server to the postgres OS user
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            return False
        return shutil.which("runuser") is not None
    return True


def _admin_url(url: str) -> str:
    """Return a psycopg URL for the ``postgres`` maintenance database of ``url``'s server."""
    return _with_database(re.sub(r"^postgresql\+\w+://", "postgresql://", url), "postgres")


def _with_database(url: str, name: str) -> str:
    """Return ``url`` with its database (the path) replaced by ``name``."""
    base, _, query = url.partition("?")
    base = base.rsplit("/", 1)[0] + "/" + name
    return f"{base}?{query}" if query else base


class PostgresCluster:
    """A PostgreSQL server in a temporary directory; a context manager.

    ``start()`` the first time runs initdb; after ``stop(remove=False)`` it
    restarts the same data on the same port, so ``url`` does not change.
    """

    def __init__(self, directory: Path | None = None) -> None:
        self._owns_dir = directory is None
        self.directory = directory or Path(tempfile.mkdtemp(prefix="servicescheduler-pg-"))
        self._url: str | None = None

    @property
    def url(self) -> str:
        """Return ``postgresql+psycopg://postgres@127.0.0.1:PORT/postgres`` (after start)."""
        if self._url is None:
            raise RuntimeError("PostgresCluster not started")
        return self._url

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _script(self, action: str) -> str:
        """Run ``pg-cluster.sh ACTION DIR``; return its stdout. Raises RuntimeError on failure."""
        res = subprocess.run(
            ["bash", str(PG_CLUSTER_SCRIPT), action, str(self.directory)],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )
        if res.returncode != 0:
            raise RuntimeError(f"pg-cluster.sh {action} failed ({res.returncode}): {res.stderr.strip()}")
        return res.stdout.strip()

    def start(self) -> PostgresCluster:
        """Start the server (initdb on first use) and wait until it accepts connections; return self."""
        self._url = self._script("start")
        return self

    def stop(self, remove: bool = True) -> None:
        """Stop the server (fast shutdown); with ``remove`` also delete a temp dir we created."""
        if self.directory.exists():
            self._script("stop")
        if remove and self._owns_dir:
            shutil.rmtree(self.directory, ignore_errors=True)


def stop_postgres(cluster: PostgresCluster) -> None:
    """Make the database unreachable (server stopped, data and port kept)."""
    cluster.stop(remove=False)


def start_postgres(cluster: PostgresCluster) -> None:
    """Bring a server stopped by ``stop_postgres`` back on the same port with the same data."""
    cluster.start()


def create_database(url: str, name: str) -> str:
    """Create (or recreate, empty) database ``name`` on ``url``'s server; return its URL.

    ``name`` must be a plain lower-case identifier. The returned URL keeps
    ``url``'s driver prefix, e.g. ``postgresql+psycopg://.../name``.
    """
    if not _DB_NAME.match(name):
        raise ValueError(f"invalid database name {name!r}")
    drop_database(url, name)
    with psycopg.connect(_admin_url(url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return _with_database(url, name)


def drop_database(url: str, name: str) -> None:
    """Drop database ``name`` on ``url``'s server if it exists, closing its sessions."""
    if not _DB_NAME.match(name):
        raise ValueError(f"invalid database name {name!r}")
    with psycopg.connect(_admin_url(url), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
