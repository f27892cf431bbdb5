"""Benchmark 11: can retention keep up with 1,000 events/s?

The product's cleanup pass (`services.cleanup.purge`: batches round-robin until done or out of
time) against the fixed-budget pass it replaced (`baselines.fixed_budget_cleanup`), side by side
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
    from bench.baselines import fixed_budget_cleanup
    from servicescheduler.builtin.cleanup import _rules, purge
    from tests.test_cleanup_edges import _insert_expired

    with tempfile.TemporaryDirectory(prefix="bench-retention-") as tmp:
        settings = bench_settings(Path(tmp))
        database = open_database(settings)
        try:
            _insert_expired(database, events=backlog, runs=backlog)
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


def section(data: dict) -> dict:
    """Report section of benchmark 11."""
    from bench.goals import goal
    from bench.stats import ratio

    product, before = data["variants"]["product"], data["variants"]["fixed budget (before)"]
    sustained = product["sustainable_events_per_s"]
    rows = [
        [kind, v["rows_per_s"]["p50"], v["rows_per_s"]["min"], v["sustainable_events_per_s"]]
        for kind, v in data["variants"].items()
    ]
    goals = [
        goal(
            "retention keeps up with ingest (events/s sustained by one run per 5 min)",
            "≥ 1,000 events/s",
            f"{sustained} events/s",
            sustained >= INGEST_EVENTS_PER_SECOND,
            f"fixed budget {before['sustainable_events_per_s']} events/s",
            ratio(sustained, before["sustainable_events_per_s"]),
        )
    ]
    return {
        "id": 11,
        "title": "Retention throughput",
        "goals": goals,
        "method": (
            f"{data['backlog_events']:,} expired events and as many expired runs in a fresh SQLite "
            "file per sample; one cleanup pass with the default settings (1,000 rows per "
            "transaction), timed; product and the fixed-budget pass it replaced alternate in rounds. "
            "Sustained ingest (events/s, each event bringing one more expired row) = what one run "
            "deletes — rows/s × its 180 s budget (product), or at most 100 batches per table "
            "(before) — spread over the 5-minute interval."
        ),
        "tables": [{"columns": ["pass", "rows/s p50", "rows/s min", "sustainable events/s"], "rows": rows}],
        "notes": ["tests/test_cleanup_edges.py measures the product on PostgreSQL as well."],
    }
