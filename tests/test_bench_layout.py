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
