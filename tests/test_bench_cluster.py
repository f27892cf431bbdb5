"""Benchmark 12's report section renders the published raw results (no measurement here)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.cluster.section import section

RESULTS = Path(__file__).resolve().parent.parent / "bench" / "results" / "2026-11-26-cluster.json"


def test_cluster_section_reports_every_measurement_from_the_published_results() -> None:
    rendered = section(json.loads(RESULTS.read_text()))
    metrics = {row["metric"]: row for row in rendered["goals"]}
    assert rendered["id"] == 12 and len(metrics) == 9
    assert metrics["duplicate runs of a slot (1 and 3 replicas)"]["status"] == "PASS"
    assert metrics["toggle propagation p99 (3 replicas, LISTEN/NOTIFY)"]["result"].endswith(" ms")
    assert "claim" in rendered["method"]
