"""Benchmarks 1 (start lateness and drift) and 2 (head-of-line blocking).

Each scheduler (product, APScheduler, seed loop) runs in its own subprocess
(`python -m bench.timing.measure IMPL SCENARIO SECONDS`, JSON on stdout), so they never share a
GIL. Timing-sensitive scenarios measure the product ALONE (no competing scheduler process on the
2 CPUs), then APScheduler with the seed loop beside it (the seed wakes once per 5 s for a few µs, and
its lateness is seconds by design, so neither disturbs the other); the CPU-bound scenario runs all
three one after another.
`schedule`'s smallest unit is 1 s (and the product's triggers are `schedule` jobs, minimum 1 s),
so the 100 ms-period case cannot be expressed: we measure 1 s and 2 s periods instead.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

from bench.common import ROOT, cpu_burn, ensure_path
from bench.stats import summarize

IMPLS = ("product", "apscheduler", "seed")
SCENARIOS: dict[str, list[tuple[str, int, str]]] = {
    "timing": [
        ("p1-body0", 1, "none"),
        ("p1-body100", 1, "sleep100"),
        ("p2-body0", 2, "none"),
        ("p2-body100", 2, "sleep100"),
    ],
    "hol_io": [("a", 4, "sleep3"), ("b", 1, "none")],
    "hol_cpu": [("a", 4, "cpu3"), ("b", 1, "none")],
}
DURATIONS: dict[str, dict[str, float]] = {
    "full": {"timing": 93, "hol_io": 49, "hol_cpu": 41},
    "quick": {"timing": 4, "hol_io": 4.5, "hol_cpu": 4.5},
}
GROUPS: dict[str, list[tuple[str, ...]]] = {
    "alone": [("product",), ("apscheduler", "seed")],  # product never shares the machine
    "sequential": [("product",), ("apscheduler",), ("seed",)],
    "side by side": [("product", "apscheduler", "seed")],
}  # --quick only: fits the 2 min budget
Records = dict[str, list[tuple[float, float | None]]]
STARTUP_DELAYS: dict[str, float] = {}  # product only: task → its start-up run's start − its due time (s)


def _body(kind: str):
    """The task body: nothing, a 100 ms sleep, a 3 s sleep or 3 s of pure-Python CPU."""
    return {
        "none": lambda: None,
        "sleep100": lambda: time.sleep(0.1),
        "sleep3": lambda: time.sleep(3.0),
        "cpu3": lambda: cpu_burn(3.0),
    }[kind]


def _run_product(tasks: list[tuple[str, int, str]], seconds: float, records: Records) -> float:
    ensure_path()
    from bench.common import bench_settings, open_database
    from servicescheduler.scheduler import Scheduler
    from servicescheduler.scheduling.registry import TaskRegistry
    from servicescheduler.scheduling.triggers import every

    tmp = Path(tempfile.mkdtemp(prefix="bench-timing-"))
    settings = bench_settings(tmp)
    database = open_database(settings)
    registry = TaskRegistry()
    for name, period, kind in tasks:
        body = _body(kind)

        def run(ctx, name=name, body=body) -> None:
            if ctx.trigger == "startup":
                # A first run is due the instant start() planned it, before start() wrote its state
                # and started the loop: its delay is start-up time, not a slot's lateness (APScheduler
                # here is started 0.5 s before its first slot). Reported on its own.
                STARTUP_DELAYS[name] = time.time() - ctx.scheduled_for
            else:
                records[name].append((time.time(), ctx.scheduled_for))
            body()

        registry.register(name, run, trigger=every(period).seconds)
    scheduler = Scheduler(settings, database, registry)
    scheduler.start()
    time.sleep(seconds)
    stop = time.time()
    scheduler.stop(timeout=5)
    database.dispose()
    return stop


def _run_aps(tasks: list[tuple[str, int, str]], seconds: float, records: Records) -> float:
    from bench.timing.aps import add_interval, new_scheduler

    scheduler = new_scheduler()
    t0 = time.time() + 0.5
    for name, period, kind in tasks:
        body = _body(kind)

        def run(name=name, body=body, period=period) -> None:
            now = time.time()
            records[name].append((now, t0 + round((now - t0) / period) * period))
            body()

        add_interval(scheduler, period, run, t0, name)
    scheduler.start()
    time.sleep(seconds + 0.5)
    stop = time.time()
    scheduler.shutdown(wait=False)
    return stop


def _run_seed(tasks: list[tuple[str, int, str]], seconds: float, records: Records) -> float:
    from bench.timing.seed_loop import SeedLoop

    # timing: one loop per task (no task delays another); head-of-line: one shared loop.
    shared = len(tasks) == 2
    loops = [SeedLoop()] if shared else [SeedLoop() for _ in tasks]
    for index, (name, period, kind) in enumerate(tasks):
        body = _body(kind)

        def run(job, name=name, body=body) -> None:
            records[name].append((time.time(), job.next_run.timestamp()))
            body()

        loops[0 if shared else index].add(period, run)
    for loop in loops:
        loop.start()
    time.sleep(seconds)
    stop = time.time()
    threads = [threading.Thread(target=loop.stop, args=(5,)) for loop in loops]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(6)
    return stop


def worker(impl: str, scenario: str, seconds: float) -> dict:
    """Runs one scheduler with one scenario's tasks for `seconds`; returns the raw records."""
    records: Records = defaultdict(list)
    runner = {"product": _run_product, "apscheduler": _run_aps, "seed": _run_seed}[impl]
    stop = runner(SCENARIOS[scenario], seconds, records)
    return {
        "stop": stop,
        "records": {k: [r for r in v if r[0] <= stop] for k, v in records.items()},
        "startup_delay_ms": {k: round(v * 1000, 3) for k, v in STARTUP_DELAYS.items()},
    }


def analyze(records: list[list[float | None]], period: int, stop: float) -> dict:
    """Lateness (ms) vs the scheduler's own due time, runs vs grid slots, drift, actual period."""
    if not records:
        return {"runs": 0, "slots": None, "lost": None, "lateness_ms": summarize([])}
    starts = [r[0] for r in records]
    t0 = records[0][1] if records[0][1] is not None else starts[0]
    lateness = [s - d for s, d in records if d is not None]
    slots = math.floor((stop - t0) / period) + 1
    periods = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    return {
        "runs": len(starts),
        "slots": slots,
        "lost": max(0, slots - len(starts)),
        "lost_pct": round(100 * max(0, slots - len(starts)) / slots, 1),
        "lateness_ms": summarize(lateness, 1000),
        "drift_ms": round((starts[-1] - (t0 + (len(starts) - 1) * period)) * 1000, 3),
        "period_s": summarize(periods, 1, 4),
        "lateness_samples_ms": [round(x * 1000, 4) for x in lateness],
    }


def _spawn(impl: str, scenario: str, seconds: float) -> subprocess.Popen:
    env = dict(os.environ, LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "bench.timing.measure", impl, scenario, str(seconds)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _collect(proc: subprocess.Popen, scenario: str, seconds: float) -> dict:
    try:
        out, err = proc.communicate(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    if proc.returncode != 0:
        return {"error": err.strip()[-800:]}
    raw = json.loads(out.strip().splitlines()[-1])
    periods = {name: period for name, period, _ in SCENARIOS[scenario]}
    out = {name: analyze(raw["records"].get(name, []), period, raw["stop"]) for name, period in periods.items()}
    for name, delay in raw.get("startup_delay_ms", {}).items():
        out[name]["startup_run_delay_ms"] = delay
    return out


def run_scenario(scenario: str, seconds: float, arrangement: str) -> dict[str, dict]:
    """Runs the scenario for every implementation, group after group (a group runs at once)."""
    out: dict[str, dict] = {}
    for group in GROUPS[arrangement]:
        procs = {impl: _spawn(impl, scenario, seconds) for impl in group}
        out.update({impl: _collect(proc, scenario, seconds) for impl, proc in procs.items()})
    return {impl: out[impl] for impl in IMPLS}


def measure(quick: bool) -> dict:
    """Benchmarks 1 and 2: returns {"timing": ..., "hol_io": ..., "hol_cpu": ...} by implementation."""
    durations = DURATIONS["quick" if quick else "full"]
    io = "side by side" if quick else "alone"
    return {
        "durations_s": durations,
        "arrangement": {"timing": io, "hol_io": io, "hol_cpu": "sequential"},
        "timing": run_scenario("timing", durations["timing"], io),
        "hol_io": run_scenario("hol_io", durations["hol_io"], io),
        "hol_cpu": run_scenario("hol_cpu", durations["hol_cpu"], "sequential"),
    }


if __name__ == "__main__":
    ensure_path()
    result = worker(sys.argv[1], sys.argv[2], float(sys.argv[3]))
    print(json.dumps(result))
