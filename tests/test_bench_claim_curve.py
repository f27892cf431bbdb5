"""Benchmark 12's claim curve on a real PostgreSQL: racing coordinators, one winner per slot."""

from __future__ import annotations

from bench.cluster.claim_curve import curve_point


def test_racing_coordinators_claim_every_slot_exactly_once_and_report_their_rate(cluster_database_url) -> None:
    point = curve_point(cluster_database_url, replicas=3, slots=20)
    assert point["errors"] == []
    assert (point["attempts"], point["slots_won"], point["slots_won_twice"]) == (60, 20, 0)
    assert point["attempts_per_s"] > 0 and point["attempt_ms"]["n"] == 60
    assert 0 < point["attempt_ms"]["p50"] <= point["attempt_ms"]["p99"]
    floor = curve_point(cluster_database_url, replicas=3, slots=5, floor=True)
    assert floor["attempts"] == 15 and floor["slots_won"] == 0  # SELECT 1 claims nothing
