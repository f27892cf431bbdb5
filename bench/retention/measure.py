"""Benchmark 11: can retention keep up with 1,000 events/s?

The product's cleanup pass (`services.cleanup.purge`: batches round-robin until done or out of
time) against the fixed-budget pass it replaced (the baseline, `fixed_budget_cleanup`), side by side
on the same backlog in fresh SQLite files, alternating in rounds: expired events and as many
expired runs, deleted with the default settings (1,000 rows per transaction).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.common import bench_settings, ensure_path, open_database
from bench.stats import summarize

BACKLOG = {"full": 60_000, "quick": 15_000}  # expired events (and as many runs) per sample
ROUNDS = {"full": 3, "quick": 2}
INGEST_EVENTS_PER_SECOND = 1000
INTERVAL_SECONDS = 300  # the cleanup task runs every 5 minutes


def _one(kind: str, backlog: int) -> dict:
    """Fills a fresh database with `backlog` expired events and runs; times one pass of `kind`."""
    ensure_path()
    from bench.retention import fixed_budget_cleanup
    from devtools.seed_history import insert_expired
    from servicescheduler.builtin.cleanup import _rules, purge

    with tempfile.TemporaryDirectory(prefix="bench-retention-") as tmp:
        settings = bench_settings(Path(tmp))
        database = open_database(settings)
        try:
            insert_expired(database, events=backlog, runs=backlog)
            started = time.perf_counter()
            if kind == "product":
                deleted = sum(purge(database=database, settings=settings).deleted.values())
            else:
                deleted = sum(
                    fixed_budget_cleanup.purge(database, _rules(settings), settings.retention_batch_size).values()
                )
            seconds = time.perf_counter() - started
        finally:
            database.dispose()
    return {
        "rows": deleted,
        "seconds": seconds,
        "budget_s": settings.retention_time_budget_seconds,
        "batch": settings.retention_batch_size,
    }


def measure(quick: bool) -> dict:
    """Rows/s of both passes and the ingest rate each can sustain with one run every 5 minutes."""
    mode = "quick" if quick else "full"
    samples: dict[str, list[dict]] = {"product": [], "fixed budget (before)": []}
    for _ in range(ROUNDS[mode]):
        for kind in samples:
            samples[kind].append(_one(kind, BACKLOG[mode]))
    out: dict = {"backlog_events": BACKLOG[mode], "variants": {}}
    for kind, runs in samples.items():
        rates = [run["rows"] / run["seconds"] for run in runs]
        rate = summarize(rates, digits=0)
        # Events per run: every expired event comes with one more expired row (here a run).
        if kind == "product":  # deletes until done, for at most its budget per run
            per_run = rate["p50"] * runs[0]["budget_s"] / 2
        else:  # at most 100 batches per table per run, however fast it deletes
            per_run = min(rate["p50"] * 240 / 2, 100 * runs[0]["batch"])
        out["variants"][kind] = {
            "rows_per_s": rate,
            "rows": [run["rows"] for run in runs],
            "sustainable_events_per_s": round(per_run / INTERVAL_SECONDS),
        }
    return out
