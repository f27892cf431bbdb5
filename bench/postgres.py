"""The benchmarks' PostgreSQL server: BENCH_DATABASE_URL when given (each benchmark creates its own
databases on it), else a throw-away cluster (devtools.postgres) started on first use and stopped by
`shutdown()` (also registered with atexit)."""

from __future__ import annotations

import os

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
