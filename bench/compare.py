"""`python -m bench.compare --rev REV [--bench 7] [--rounds 6]` (`make bench-compare REV=...`):
one benchmark for commit REV and for the working tree, alternately, one process per run.

This machine's absolute numbers drift by ±25 % with the load of everything else on it; two runs
taken minutes apart compare noise. So REV is checked out in a temporary git worktree, and each
round runs the benchmark once for each side back to back (the order flips every round, ABBA, so
a drift within a round favours neither). Every numeric leaf of the benchmark's raw results
(`{"topics": {"clean": {"product → SQLite": {"events_per_s": ...}}}}` becomes
`topics.clean.product → SQLite.events_per_s`) is reported as the median of each side and the
median of the per-round ratios working tree ÷ REV: a paired ratio, which survives the noise that
moves both runs of a round alike.

A run imports the benchmark from its own tree (cwd and PYTHONPATH), calls its runner the way
`python -m bench` does (`BY_NUMBER[n].run(Context(...))`) and prints the raw results as JSON;
it writes no report, so neither tree's docs/ change.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARK = "BENCH-COMPARE-RESULT "  # prefix of the one stdout line a run's result is on

# Runs inside the tree being measured (REV's worktree or the working tree): only names that
# `python -m bench` has had since the BY_NUMBER table exists.
# A benchmark is a number of that table, or a call `package.module:function(args)` (e.g. one
# stage alone: `bench.pipeline.storage_floor:mixed('PostgreSQL', 20000)`) returning a dict.
DRIVER = """
import importlib, json, sys
from bench.__main__ import BY_NUMBER, Broker, Context, _stop_helpers
broker = Broker()
try:
    if ":" in sys.argv[1]:
        module, call = sys.argv[1].split(":", 1)
        data = eval(call, vars(importlib.import_module(module)))
    else:
        data, _ = BY_NUMBER[int(sys.argv[1])].run(Context(quick=sys.argv[2] == "1", broker=broker))
finally:
    broker.stop()
    _stop_helpers()
print(MARK + json.dumps(data, default=str), flush=True)
""".replace("MARK", repr(MARK))


def flatten(data: object, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of nested dicts by dotted path (lists and booleans are not metrics)."""
    out: dict[str, float] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(data, (int, float)) and not isinstance(data, bool):
        out[prefix] = float(data)
    return out


@contextlib.contextmanager
def worktree(repo: Path, rev: str) -> Iterator[Path]:
    """REV checked out (detached) in a temporary git worktree, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="bench-compare-")) / "tree"
    add = ["git", "-C", str(repo), "worktree", "add", "--detach", str(path), rev]
    subprocess.run(add, check=True, capture_output=True)
    try:
        yield path
    finally:
        subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(path)], capture_output=True)
        subprocess.run(["git", "-C", str(repo), "worktree", "prune"], capture_output=True)


def run_once(tree: Path, bench: int | str, quick: bool, timeout: float, python: str) -> dict[str, float]:
    """One benchmark run in a fresh process importing from `tree`; its numeric leaves."""
    env = {**os.environ, "PYTHONPATH": str(tree), "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING")}
    done = subprocess.run(
        [python, "-c", DRIVER, str(bench), "1" if quick else "0"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout)[-2000:]
        raise RuntimeError(f"benchmark {bench} in {tree} failed (exit {done.returncode}):\n{tail}")
    return flatten(json.loads(lines[-1][len(MARK) :]))


def summarize(runs: dict[str, list[dict[str, float]]], metric: str = "") -> list[dict]:
    """Per metric present in every run of both sides: medians and the median paired ratio."""
    rev_runs, work_runs = runs["rev"], runs["work"]
    common = set.intersection(*(set(run) for run in rev_runs + work_runs)) if rev_runs and work_runs else set()
    rows = []
    for name in sorted(key for key in common if metric in key):
        rev = [run[name] for run in rev_runs]
        work = [run[name] for run in work_runs]
        ratios = [w / r for r, w in zip(rev, work, strict=True) if r]
        rows.append(
            {
                "metric": name,
                "rev_median": statistics.median(rev),
                "work_median": statistics.median(work),
                "ratio_median": statistics.median(ratios) if ratios else None,
                "ratio_min": min(ratios) if ratios else None,
                "ratio_max": max(ratios) if ratios else None,
                "rounds": len(rev),
            }
        )
    return rows


def compare(
    rev: str, bench: int | str, rounds: int, *, quick: bool, repo: Path = ROOT, timeout: float = 3600, python: str = ""
) -> dict:
    """Alternating runs (ABBA) of benchmark `bench` for REV and the working tree `repo`."""
    python = python or sys.executable
    runs: dict[str, list[dict[str, float]]] = {"rev": [], "work": []}
    with worktree(repo, rev) as rev_tree:
        trees = {"rev": rev_tree, "work": repo}
        for index in range(rounds):
            order = ("rev", "work") if index % 2 == 0 else ("work", "rev")
            for side in order:
                print(f"[bench-compare] round {index + 1}/{rounds}: {side}", file=sys.stderr, flush=True)
                runs[side].append(run_once(trees[side], bench, quick, timeout, python))
    return {"rev": rev, "bench": bench, "rounds": rounds, "quick": quick, "runs": runs}


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def render(result: dict, metric: str = "") -> str:
    """The comparison as a fixed-width table (ratio = working tree ÷ REV, per round)."""
    rows = summarize(result["runs"], metric)
    head = f"benchmark {result['bench']}: REV {result['rev']} vs working tree, {result['rounds']} alternating rounds"
    lines = [head, f"{'metric':<70} {'REV med':>10} {'work med':>10} {'ratio med':>9}  ratio range"]
    for row in rows:
        spread = f"{_number(row['ratio_min'])}..{_number(row['ratio_max'])}"
        lines.append(
            f"{row['metric'][:70]:<70} {_number(row['rev_median']):>10} {_number(row['work_median']):>10} "
            f"{_number(row['ratio_median']):>9}  {spread}"
        )
    return "\n".join(lines)


def _bench_number(word: str) -> int | str:
    if word.isdigit() or ":" in word:
        return word if ":" in word else int(word)
    sys.path.insert(0, str(ROOT))
    from bench.__main__ import BENCHMARKS

    for benchmark in BENCHMARKS:
        if word == str(benchmark.number) or word.lower() in benchmark.title.lower():
            return benchmark.number
    raise SystemExit(f"--bench: no benchmark {word!r} (known: {', '.join(str(b.number) for b in BENCHMARKS)})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", required=True, help="commit (or branch, tag) to compare the working tree with")
    parser.add_argument(
        "--bench",
        default="7",
        help="benchmark number, a word of its title, or module:call(...) returning a dict (default 7)",
    )
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds (default 6)")
    parser.add_argument("--full", action="store_true", help="full samples instead of --quick")
    parser.add_argument("--metric", default="", help="only metrics whose path contains this text")
    parser.add_argument("--json", type=Path, help="also write the raw runs and summary here")
    parser.add_argument("--repo", type=Path, default=ROOT, help="the working tree (default: this one)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be ≥ 1")
    result = compare(args.rev, _bench_number(args.bench), args.rounds, quick=not args.full, repo=args.repo)
    print(render(result, args.metric))
    if args.json:
        args.json.write_text(json.dumps({**result, "summary": summarize(result["runs"], args.metric)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
