"""`make bench-compare`: a benchmark of a commit (in its own git worktree) and of the working tree,
alternately, one process per run, medians and paired ratios. Run against a tiny repository whose
one benchmark returns a number the test knows, so the reported ratio can be checked exactly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.compare import flatten, summarize

ROOT = Path(__file__).resolve().parent.parent

# A repository's `python -m bench` table as bench.compare's driver uses it: BY_NUMBER, Broker,
# Context, _stop_helpers. Each run appends its side to runs.log (to check the alternation).
TINY_BENCH = """
import os
from dataclasses import dataclass

RATE = {rate}
SIDE = "{side}"


class Broker:
    def stop(self): pass


@dataclass
class Context:
    quick: bool
    broker: Broker


def _stop_helpers(): pass


@dataclass
class Benchmark:
    number: int
    title: str
    run: object


def _run(context):
    with open(os.environ["COMPARE_LOG"], "a") as log:
        log.write(SIDE + "\\n")
    return {{"rows": {{"ours": {{"events_per_s": RATE, "ok": True}}}}, "samples": [1, 2]}}, {{}}


BENCHMARKS = (Benchmark(1, "Tiny", _run),)
BY_NUMBER = {{b.number: b for b in BENCHMARKS}}
"""


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@localhost", "-C", str(repo), *args],
        check=True,
        capture_output=True,
    )


def test_compare_runs_the_commit_and_the_working_tree_alternately_and_reports_paired_ratios(tmp_path) -> None:
    repo = tmp_path / "repo"
    (repo / "bench").mkdir(parents=True)
    (repo / "bench" / "__init__.py").write_text("")
    (repo / "bench" / "__main__.py").write_text(TINY_BENCH.format(rate=1000, side="rev"))
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "tiny")
    (repo / "bench" / "__main__.py").write_text(TINY_BENCH.format(rate=2500, side="work"))  # uncommitted
    log = tmp_path / "runs.log"
    out = tmp_path / "result.json"

    done = subprocess.run(
        [sys.executable, "-m", "bench.compare", "--rev", "HEAD", "--bench", "1", "--rounds", "3"]
        + ["--repo", str(repo), "--json", str(out)],
        cwd=ROOT,
        env={"COMPARE_LOG": str(log), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    assert log.read_text().split() == ["rev", "work", "work", "rev", "rev", "work"]  # ABBA: one process per run
    row = next(line for line in done.stdout.splitlines() if line.startswith("rows.ours.events_per_s"))
    assert row.split()[1:4] == ["1,000", "2,500", "2.5"], row
    summary = json.loads(out.read_text())["summary"]
    assert [(s["metric"], s["ratio_median"], s["rounds"]) for s in summary] == [("rows.ours.events_per_s", 2.5, 3)]
    listed = subprocess.run(["git", "-C", str(repo), "worktree", "list"], capture_output=True, text=True).stdout
    assert len(listed.splitlines()) == 1  # the commit's temporary worktree is gone


def test_a_failing_run_stops_the_comparison_with_its_error(tmp_path) -> None:
    repo = tmp_path / "repo"
    (repo / "bench").mkdir(parents=True)
    (repo / "bench" / "__init__.py").write_text("")
    (repo / "bench" / "__main__.py").write_text("raise RuntimeError('broken benchmark')\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "broken")
    done = subprocess.run(
        [sys.executable, "-m", "bench.compare", "--rev", "HEAD", "--rounds", "1", "--repo", str(repo)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and "broken benchmark" in done.stderr


def test_metrics_are_the_numeric_leaves_and_ratios_are_paired_per_round() -> None:
    assert flatten({"a": {"b": 2, "ok": True, "list": [1]}, "c": 1.5, "d": None}) == {"a.b": 2.0, "c": 1.5}
    runs = {"rev": [{"x": 100.0}, {"x": 50.0}, {"x": 100.0}], "work": [{"x": 110.0}, {"x": 60.0}, {"x": 90.0}]}
    (row,) = summarize(runs)
    # medians 100 vs 90 say "slower"; the paired ratios (1.1, 1.2, 0.9) say "faster in 2 of 3 rounds"
    assert (row["rev_median"], row["work_median"]) == (100.0, 90.0)
    assert round(row["ratio_median"], 6) == 1.1 and round(row["ratio_min"], 6) == 0.9


def test_a_benchmark_may_be_one_call_of_a_module_of_each_tree(tmp_path) -> None:
    repo = tmp_path / "repo"
    (repo / "bench").mkdir(parents=True)
    (repo / "bench" / "__init__.py").write_text("")
    (repo / "bench" / "__main__.py").write_text(TINY_BENCH.format(rate=1, side="rev"))
    (repo / "bench" / "stage.py").write_text("def measure(n):\n    return {'per_s': n * 10}\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "stage")
    (repo / "bench" / "stage.py").write_text("def measure(n):\n    return {'per_s': n * 15}\n")
    done = subprocess.run(
        [sys.executable, "-m", "bench.compare", "--rev", "HEAD", "--rounds", "2", "--repo", str(repo)]
        + ["--bench", "bench.stage:measure(100)"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("per_s"))
    assert row.split()[1:4] == ["1,000", "1,500", "1.5"], row
