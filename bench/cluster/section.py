"""Report section of benchmark 12 (several replicas on one database; measured in `measure`)."""

from __future__ import annotations

from typing import Any

from bench.report import goal
from bench.stats import ratio


def _p(entry: dict[str, Any], key: str = "p99") -> Any:
    return (entry or {}).get(key)


def _claim_goal(name: str, entry: dict[str, Any]) -> dict[str, Any]:
    admit, release, floor = _p(entry["admit_us"], "p50"), _p(entry["release_us"], "p50"), _p(entry["select1_us"], "p50")
    return goal(
        f"claim cost per run (admit + release), {name}",
        "(report)",
        f"{admit} + {release} µs p50",
        None,
        f"SELECT 1 txn {floor} µs",
        ratio(admit, floor),
    )


def _lateness_goals(data: dict[str, Any]) -> list[dict[str, Any]]:
    alone, one, three = data["alone_unclustered"], data["one_replica"], data["three_replicas"]
    base = _p(alone["lateness_ms"])
    base3 = _p(data.get("three_unclustered", alone)["lateness_ms"])
    single, triple = _p(one["lateness_ms"]), _p(three["lateness_ms"])
    return [
        goal(
            "1 s task lateness p99, 1 replica (PostgreSQL)",
            "(report)",
            f"{single} ms",
            None,
            f"unclustered {base} ms",
            ratio(single, base),
        ),
        *([_gc_goal(data["gc_pause"])] if data.get("gc_pause") else []),
        goal(
            "1 s task lateness p99, 3 replicas (PostgreSQL)",
            "≤ 5 ms",
            f"{triple} ms",
            (triple or 1e9) <= 5,
            f"3 unclustered processes {base3} ms",
            ratio(triple, base3),
        ),
        goal(
            "duplicate runs of a slot (1 and 3 replicas)",
            "0",
            f"{one['duplicates']} / {three['duplicates']}",
            one["duplicates"] == 0 and three["duplicates"] == 0,
        ),
    ]


def _gc_goal(pause: dict[str, Any]) -> dict[str, Any]:
    return goal(
        "full garbage collection of a started service (every thread waits), GC_FREEZE_ON_START=true",
        "(report)",
        f"{pause['frozen_ms']} ms",
        None,
        f"false: {pause['unfrozen_ms']} ms ({pause['frozen_objects']} start-up objects walked; "
        f"median of {pause['rounds']})",
    )


def _failover_goals(three: dict[str, Any]) -> list[dict[str, Any]]:
    fail, prop = three["failover"], three["toggle_propagation_ms"]
    ttl = fail["ttl_s"]
    interrupted, next_run, gap = fail["interrupted_recorded_s"], fail["next_slow_run_s"], fail["tick_max_gap_s"]
    return [
        goal(
            "toggle propagation p99 (3 replicas, LISTEN/NOTIFY)",
            "≤ 1000 ms",
            f"{_p(prop)} ms",
            (_p(prop) or 1e9) <= 1000,
            f"p50 {_p(prop, 'p50')} ms",
        ),
        goal(
            f"kill -9 → run recorded interrupted (TTL {ttl:g} s)",
            f"≤ {ttl + 1:g} s",
            f"{_round(interrupted)} s",
            (interrupted or 1e9) <= ttl + 1,
        ),
        goal(
            "kill -9 → next run of its task elsewhere (its first slot after the lease expired)",
            "(report)",
            f"{_round(next_run)} s",
            None,
            "≤ TTL + one 4 s period",
        ),
        goal(
            "kill -9 → largest gap of the 1 s task", "≤ 1 s (no slot lost)", f"{_round(gap)} s", (gap or 1e9) <= 1.001
        ),
    ]


def _curve(curve: dict[str, Any] | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(tables, goals) of the claim curve (bench/cluster/claim_curve.py), when it was measured."""
    if not curve:
        return [], []
    rows = [
        [
            point["replicas"],
            point["attempts"],
            point["attempts_per_s"],
            point["slots_per_s"],
            _p(point["attempt_ms"], "p50"),
            _p(point["attempt_ms"]),
            _p(point.get("select1_ms") or {}, "p50"),
            _p(point.get("select1_ms") or {}),
            point["slots_won"],
            point["slots_won_twice"],
        ]
        for point in curve["points"]
    ]
    table = {
        "title": f"Claim curve: N DatabaseCoordinators race for each of {curve['slots']} slots on one PostgreSQL "
        f"({curve['tasks']} tasks round-robin)",
        "columns": [
            "replicas",
            "claim attempts",
            "attempts/s",
            "slots/s",
            "attempt p50 ms",
            "attempt p99 ms",
            "SELECT 1 p50 ms (same concurrency)",
            "SELECT 1 p99 ms",
            "slots won",
            "won twice",
        ],
        "rows": rows,
    }
    first, last = curve["points"][0], curve["points"][-1]
    won_once = all(p["slots_won"] == p["slots"] and p["slots_won_twice"] == 0 for p in curve["points"])
    goals = [
        goal(
            f"claim attempt p50, {last['replicas']} replicas racing (PostgreSQL)",
            "(report)",
            f"{_p(last['attempt_ms'], 'p50')} ms ({last['attempts_per_s']} attempts/s)",
            None,
            f"1 replica {_p(first['attempt_ms'], 'p50')} ms",
            ratio(_p(last["attempt_ms"], "p50"), _p(first["attempt_ms"], "p50")),
        ),
        goal("every slot claimed exactly once (1 … 30 replicas)", "yes", "yes" if won_once else "NO", won_once),
    ]
    return [table], goals


def section(data: dict[str, Any]) -> dict[str, Any]:
    """The report section of benchmark 12."""
    curve_tables, curve_goals = _curve(data.get("claim_curve"))
    goals = [
        _claim_goal("SQLite", data["claim_sqlite"]),
        _claim_goal("PostgreSQL", data["claim_postgresql"]),
        *_lateness_goals(data),
        *_failover_goals(data["three_replicas"]),
        *curve_goals,
    ]
    method = (cluster_doc() or "").split("\n\n", 1)[1].replace("\n", " ").strip()
    return {
        "id": 12,
        "title": "Several replicas on one database",
        "goals": goals,
        "method": f"{method} Lateness windows {data['seconds']} s; lateness = started_at − scheduled_for."
        + (f" Claim curve: {_curve_doc()}" if curve_tables else ""),
        "tables": curve_tables,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _curve_doc() -> str:
    from bench.cluster import claim_curve

    return (claim_curve.__doc__ or "").split("\n\n", 1)[1].replace("\n", " ").strip()


def cluster_doc() -> str | None:
    """The measurement description (bench/cluster/measure.py's docstring)."""
    from bench.cluster import measure

    return measure.__doc__
