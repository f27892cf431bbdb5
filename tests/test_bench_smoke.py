"""Smoke test of the benchmark harness: one tiny measurement and the report's structure (< 10 s)."""

from __future__ import annotations

from bench import stats
from bench.report import render


def test_percentiles() -> None:
    assert stats.percentile([1, 2, 3, 4], 50) == 2.5
    assert stats.summarize([0.001, 0.002], 1000)["max"] == 2.0
    assert stats.ratio(1.0, 0) is None


def test_async_overhead_measurement_and_report_section() -> None:
    from bench.async_overhead import measure, section

    data = measure.measure(quick=True, iterations=200)
    assert data["iterations"] == 200
    assert set(data["variants"]) == {"plain call", "persistent loop", "fresh loop (product)", "asyncio.run"}
    for summary in data["variants"].values():
        assert summary["n"] == 10 and summary["p50"] > 0
    rendered = section.section(data)
    assert rendered["id"] == 5 and rendered["goals"][0]["status"] in ("PASS", "MISS")
    markdown = render([{**rendered, "plots": []}], {"quick": True, "date": "today", "wall_s": 1.0}, "x.json")
    assert "fresh loop (product)" in markdown and "| 5 |" in markdown


def test_seed_design_latency_is_computed_from_a_35_s_cycle() -> None:
    from bench.pipeline.e2e import seed_design_latency

    seed = seed_design_latency(2000)
    assert seed["n"] == 2000 and seed["min"] >= 0 and seed["max"] <= 35_000
    assert 15_000 < seed["p50"] < 20_000


def test_throughput_section_with_profile_and_no_machine_paths() -> None:
    from bench.pipeline.profile import _short, profile_findings
    from bench.pipeline.section import throughput_section

    assert _short("/x/y/site-packages/sqlalchemy/sql/compiler.py") == "sqlalchemy/sql/compiler.py"
    assert _short("/opt/py/lib/python3.11/json/decoder.py") == "stdlib/json/decoder.py"
    compile_row = ["  SQL compilation (once per new batch size, then cached)", 600.0, 60.0]
    profile = {
        "events": 100,
        "total_s": 0.1,
        "cumulative": [["poll_once (total)", 1000.0, 100.0], compile_row],
        "self": [["sqlalchemy/sql/coercions.py:1(expect)", 10, 5.0, 0.5]],
    }
    data = {
        "topics": {
            "clean": {
                "raw kafka-python": {"events": 10, "events_per_s": 100},
                "product → SQLite": {"events": 10, "events_per_s": 40},
                "storage alone → SQLite": {"events": 10, "events_per_s": 90},
                "product (confluent-kafka) → SQLite": {"events": 10, "events_per_s": 60_000},
            },
            "1 % malformed": {"product → SQLite": {"events": 10, "events_per_s": 37}},
        },
        "profiles": {"product → SQLite, clean": profile},
        "notes": [],
        "analysis": profile_findings({"product → SQLite, clean": profile}),
    }
    section = throughput_section(data)
    by_metric = {row["metric"]: row for row in section["goals"]}
    sqlite = by_metric["product → SQLite events/s vs raw kafka-python"]
    assert sqlite["status"] == "MISS" and sqlite["ratio"] == 0.4  # goal ≥ 0.5
    assert by_metric["product → PostgreSQL events/s vs raw kafka-python"]["status"] == "NOT RUN"
    confluent = by_metric["product (confluent-kafka) → SQLite events/s"]
    assert confluent["status"] == "PASS" and "storage alone 90" in confluent["baseline"]
    malformed = by_metric["product → SQLite, 1 % malformed vs clean"]
    assert malformed["status"] == "PASS" and malformed["ratio"] == 0.93  # 37 / 40 ≥ 0.9
    assert by_metric["product → PostgreSQL, 1 % malformed vs clean"]["status"] == "NOT RUN"
    markdown = render([{**section, "plots": []}], {"quick": True, "date": "today", "wall_s": 1.0}, "x.json")
    assert "SQL compilation" in markdown and "60.0 %" in markdown


def test_throughput_goal_uses_the_paired_ratio_of_every_run() -> None:
    """Each product run is paired with a raw loop taken just before it: the row shows the median
    run and the median paired ratio, and the goal holds only if it holds in every run."""
    from bench.pipeline.section import throughput_section
    from bench.pipeline.throughput import _median_run

    runs = [
        {"events": 10, "events_per_s": rate, "ratio_to_raw": r, "note": "n"}
        for rate, r in ((300, 0.6), (100, 0.38), (200, 0.45))
    ]
    row = _median_run(runs)
    assert row["events_per_s"] == 200 and row["ratio_to_raw_median"] == 0.45 and row["ratio_to_raw_min"] == 0.38
    assert row["ratios_to_raw"] == [0.6, 0.38, 0.45] and "0.6, 0.38, 0.45" in row["note"]
    data = {
        "topics": {
            "clean": {
                "raw kafka-python": {"events": 10, "events_per_s": 1000},
                "product → PostgreSQL": row,
                "product → SQLite": _median_run([{**run, "ratio_to_raw": 0.5} for run in runs]),
            }
        },
        "notes": [],
    }
    section = throughput_section(data)
    by_metric = {goal["metric"]: goal for goal in section["goals"]}
    pg = by_metric["product → PostgreSQL events/s vs raw kafka-python (paired per run)"]
    assert pg["status"] == "MISS" and pg["ratio"] == 0.45  # median ≥ 0.4 but one run at 0.38
    assert by_metric["product → SQLite events/s vs raw kafka-python (paired per run)"]["status"] == "PASS"
    table = section["tables"][0]["rows"]
    assert table[1][:5] == ["clean", "product → PostgreSQL", 10, 200, 0.45]  # paired, not 200 / 1000


def test_retention_section_compares_with_the_fixed_budget_pass() -> None:
    from bench.retention.section import section

    data = {
        "backlog_events": 10,
        "variants": {
            "product": {"rows_per_s": {"p50": 50_000, "min": 40_000}, "sustainable_events_per_s": 15_000},
            "fixed budget (before)": {"rows_per_s": {"p50": 30_000, "min": 20_000}, "sustainable_events_per_s": 333},
        },
    }
    rendered = section(data)
    assert rendered["id"] == 11 and rendered["goals"][0]["status"] == "PASS"
    assert rendered["goals"][0]["ratio"] == round(15_000 / 333, 2)


def test_the_profile_names_product_functions_that_exist() -> None:
    """Benchmark 7's cost table finds the product's functions by file suffix: a moved file would read 0."""
    from pathlib import Path

    from bench.pipeline.profile import _PROFILE_KEYS

    package = Path(__file__).resolve().parent.parent / "servicescheduler"
    third_party = ("~", "kafka/", "sqlalchemy/")
    product = [(suffix, func) for suffix, func, _ in _PROFILE_KEYS if not suffix.startswith(third_party)]
    assert len(product) >= 8
    for suffix, func in product:
        files = [path for path in package.rglob("*.py") if path.as_posix().endswith("/" + suffix)]
        assert len(files) == 1, f"{suffix}: {files}"
        assert f"def {func}(" in files[0].read_text(), f"{suffix} defines no {func}"


def test_benchmark_1_reports_start_up_runs_apart_from_slot_lateness() -> None:
    from bench.timing import measure, section

    raw = measure.worker("product", "timing", 2.2)
    tasks = {name for name, _, _ in measure.SCENARIOS["timing"]}
    assert set(raw["startup_delay_ms"]) == tasks and all(v >= 0 for v in raw["startup_delay_ms"].values())
    # Only grid slots are in the lateness records: each is due after its task's start-up run.
    assert all(due is not None and due > raw["stop"] - 3 for r in raw["records"].values() for _, due in r)
    product = {name: {"startup_run_delay_ms": delay} for name, delay in raw["startup_delay_ms"].items()}
    note = section._startup_note(product)
    assert note and all(name in note[0] for name in tasks)
