"""The benchmarks' PostgreSQL server: BENCH_DATABASE_URL when given (each benchmark creates its own
databases on it), else a throw-away cluster (devtools.postgres) started on first use and stopped by
`shutdown()` (also registered with atexit)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

_PG: dict = {"cluster": None, "url": None, "error": None}


# ------------------------------------------------------------------ PostgreSQL
def postgres_server() -> tuple[str | None, str | None]:
    """(server URL, None) or (None, why PostgreSQL rows are skipped); starts a cluster once."""
    if _PG["url"] or _PG["error"]:
        return _PG["url"], _PG["error"]
    given = os.environ.get("BENCH_DATABASE_URL")
    if given:
        _PG["url"] = given
        return given, None
    try:
        from devtools.postgres import PostgresCluster, postgres_available

        if not postgres_available():
            _PG["error"] = (
                "PostgreSQL rows skipped: no BENCH_DATABASE_URL and no PostgreSQL server "
                "binaries (initdb/pg_ctl) installed"
            )
        else:
            import atexit

            _PG["cluster"] = PostgresCluster().start()
            atexit.register(shutdown)  # also on an unexpected exit of the harness
            _PG["url"] = _PG["cluster"].url
    except Exception as exc:  # noqa: BLE001  (reported as the skip reason)
        _PG["error"] = f"PostgreSQL rows skipped: cluster did not start ({type(exc).__name__}: {exc})"[:300]
    return _PG["url"], _PG["error"]


def shutdown() -> None:
    """Stops the PostgreSQL cluster the bench started, if any (idempotent)."""
    cluster, _PG["cluster"] = _PG["cluster"], None
    _PG["url"] = None if cluster is not None else _PG["url"]
    if cluster is not None:
        cluster.stop()


@contextlib.contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """A new database named `prefix_<n>` on the bench's server (dropped afterwards); its URL."""
    from devtools.postgres import create_database, drop_database

    server, error = postgres_server()
    if server is None:
        raise RuntimeError(error or "PostgreSQL unavailable")
    name = f"{prefix}_{int(time.time() * 1000) % 10**9}"
    url = create_database(server, name)
    try:
        yield url
    finally:
        with contextlib.suppress(Exception):
            drop_database(server, name)
