"""The benchmarks' layout: one table of benchmarks behind `python -m bench`, entry points that answer
--help, module paths that resolve, and bench/devtools never importing the tests (no benchmark runs)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_architecture import import_graph

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def bench_main(monkeypatch: pytest.MonkeyPatch):
    # bench/__main__ sets LOG_LEVEL when unset: keep that out of the other tests' environment.
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    import bench.__main__

    return bench.__main__


def test_the_table_holds_each_benchmark_once_in_order(bench_main) -> None:
    numbers = [benchmark.number for benchmark in bench_main.BENCHMARKS]
    assert numbers == list(range(1, 14))
    assert all(benchmark.title and callable(benchmark.run) for benchmark in bench_main.BENCHMARKS)
    assert bench_main._parse([]).selected == numbers
    assert bench_main._parse(["--only", "3, 1,3"]).selected == [1, 3]


@pytest.mark.parametrize("only", ["14", "0", "x", "1,seven", "-1"])
def test_only_refuses_a_benchmark_that_does_not_exist(bench_main, only: str, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        bench_main._parse(["--only", only])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--only: no benchmark" in err and "known: 1, 2, 3" in err


def test_merge_remeasures_the_selected_and_keeps_the_others_from_the_page_s_results(
    bench_main, monkeypatch, tmp_path
) -> None:
    import json

    from bench import report

    def fake(number: int, value: int):
        def render(data: dict, results: dict) -> dict:
            goal = report.goal(f"metric {number}", "≤ 1", str(data["value"]), data["value"] <= 1)
            return {"id": number, "title": f"Fake {number}", "method": "m", "goals": [goal]}

        return bench_main.Benchmark(number, f"Fake {number}", lambda context: {"value": value}, render)

    table = (fake(1, 5), fake(2, 6), fake(3, 7))
    monkeypatch.setattr(bench_main, "BENCHMARKS", table)
    monkeypatch.setattr(bench_main, "BY_NUMBER", {b.number: b for b in table})
    monkeypatch.setattr(report, "DOC", tmp_path / "benchmarks.md")
    monkeypatch.setattr(report, "RESULTS_DIR", tmp_path / "results")
    (tmp_path / "results").mkdir()
    old = {"1": {"value": 1}, "2": {"value": 2}, "3": {"value": 3}}
    (tmp_path / "results" / "old.json").write_text(json.dumps({"meta": {"date": "2026-01-02 03:04"}, "results": old}))
    (tmp_path / "benchmarks.md").write_text("Raw samples: `bench/results/old.json`.\n")

    assert bench_main.main(["--only", "2", "--merge"]) == 0
    page = (tmp_path / "benchmarks.md").read_text()
    written = json.loads(next(p for p in (tmp_path / "results").iterdir() if p.name != "old.json").read_text())
    assert written["results"] == {"1": {"value": 1}, "2": {"value": 6}, "3": {"value": 3}}
    assert written["meta"]["measured_on"]["1"] == "2026-01-02 03:04"
    assert written["meta"]["measured_on"]["2"] != "2026-01-02 03:04"
    assert "| 1 | metric 1 | ≤ 1 | 1 |" in page and "| 2 | metric 2 | ≤ 1 | 6 |" in page
    assert "| 3 | metric 3 | ≤ 1 | 3 |" in page
    assert "the older ones kept from `bench/results/old.json`" in page
    assert page.count("*Measured on 2026-01-02 03:04.*") == 2


def test_merge_without_only_or_without_a_results_file_is_refused(bench_main, monkeypatch, tmp_path, capsys) -> None:
    from bench import report

    with pytest.raises(SystemExit):
        bench_main._parse(["--merge"])
    assert "--merge needs --only" in capsys.readouterr().err
    monkeypatch.setattr(report, "DOC", tmp_path / "benchmarks.md")
    with pytest.raises(SystemExit, match="names no results file"):
        report.previous_results()


def test_bench_and_devtools_never_import_the_tests() -> None:
    graph = import_graph()
    assert "servicescheduler.settings" in graph["bench.common"]  # the graph sees imports inside functions
    leaks = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        if module.split(".")[0] in ("bench", "devtools")
        for target in targets
        if target.split(".")[0] == "tests"
    )
    assert leaks == [], f"bench/devtools import the tests (move the helper to devtools/): {leaks}"


def test_every_module_bench_starts_by_name_exists() -> None:
    """`python -m bench.x.y` subprocesses and TASK_MODULES name modules as strings: a move must update them."""
    named = set()
    for path in (ROOT / "bench").rglob("*.py"):
        text = path.read_text()
        named.update(re.findall(r'"-m",\s*"(bench\.[\w.]+)"', text))
        named.update(re.findall(r'^TASK_MODULE = "(bench\.[\w.]+)"', text, flags=re.M))
    assert {"bench.timing.measure", "bench.scale.measure", "bench.web.measure", "bench.soak.tasks"} <= named
    missing = sorted(name for name in named if importlib.util.find_spec(name) is None)
    assert missing == []


@pytest.mark.parametrize("module", ["bench", "bench.soak", "bench.dashboard", "bench.cluster"])
def test_each_entry_point_answers_help_without_measuring(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert f"usage: python -m {module}" in done.stdout
