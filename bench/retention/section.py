"""Report section of benchmark 11 (retention throughput)."""

from __future__ import annotations

from bench.report import goal
from bench.retention.measure import INGEST_EVENTS_PER_SECOND
from bench.stats import ratio


def section(data: dict) -> dict:
    """Report section of benchmark 11."""
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
