"""Smoke test of the benchmark harness: one tiny measurement and the report's structure (< 10 s)."""

from __future__ import annotations

from bench import asyncloop, goals_more, stats
from bench.report import render


def test_percentiles() -> None:
    assert stats.percentile([1, 2, 3, 4], 50) == 2.5
    assert stats.summarize([0.001, 0.002], 1000)["max"] == 2.0
    assert stats.ratio(1.0, 0) is None


def test_async_overhead_measurement_and_report_section() -> None:
    data = asyncloop.measure(quick=True, iterations=200)
    assert data["iterations"] == 200
    assert set(data["variants"]) == {"plain call", "persistent loop", "fresh loop (product)", "asyncio.run"}
    for summary in data["variants"].values():
        assert summary["n"] == 10 and summary["p50"] > 0
    section = goals_more.async_section(data)
    assert section["id"] == 5 and section["goals"][0]["status"] in ("PASS", "MISS")
    markdown = render([{**section, "plots": []}], {"quick": True, "date": "today", "wall_s": 1.0}, "x.json")
    assert "fresh loop (product)" in markdown and "| 5 |" in markdown
