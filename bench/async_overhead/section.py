"""Report section of benchmark 5 (async overhead per run)."""

from __future__ import annotations

from bench.report import goal
from bench.stats import ratio


def section(data: dict) -> dict:
    """Benchmark 5."""
    variants = data["variants"]
    fresh, plain = variants["fresh loop (product)"], variants["plain call"]
    reference = variants["asyncio.run"]["p50"]
    rows = [[name, s["p50"], s["min"], s["max"], ratio(s["p50"], reference)] for name, s in variants.items()]
    goals = [
        goal(
            "async run overhead (fresh loop)",
            "≤ 150 µs",
            f"{fresh['p50']} µs",
            (fresh["p50"] or 1e9) <= 150,
            f"asyncio.run {reference} µs",
            ratio(fresh["p50"], reference),
        )
    ]
    return {
        "id": 5,
        "title": "Async overhead per run",
        "goals": goals,
        "method": (
            f"{data['iterations']} calls per variant of an empty coroutine, in 10 interleaved rounds; "
            f"per-call µs (p50/min/max over the round means). Plain call: {plain['p50']} µs."
        ),
        "tables": [{"columns": ["variant", "p50 µs", "min µs", "max µs", "ratio to asyncio.run"], "rows": rows}],
        "plots": [
            {
                "kind": "bar",
                "file": "async_overhead.png",
                "title": "Per-run overhead (µs, p50)",
                "ylabel": "µs",
                "series": {k: v["p50"] for k, v in variants.items()},
            }
        ],
    }
