"""Benchmark 3: cost of a wake-up, lateness and idle behaviour with 10 to 10,000 tasks.

tick() cost: `scheduler.tick(now)` timed directly (thread CPU clock) with a fake clock and no loop
thread, with 0, 1 and 5 tasks due per tick: the fixed cost of a wake-up and the cost per due run.

Real time: per size, one subprocess (`python -m bench.scale.measure N ACTIVE_S IDLE_S TICKS`) builds the product with
N registered tasks: 5 due every second, the rest every hour and already run (their persisted
anchor is "now", inserted in bulk so nothing else is due). CPU per wake-up is the loop
thread's own CPU time (pthread CPU clock) divided by its wake-up count. The idle phase has
only the hourly tasks. The seed loop's `run_pending()` and `idle_seconds()` are timed on a
`schedule.Scheduler` holding the same jobs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import ROOT, ensure_path, proc_status, process_cpu_seconds
from bench.stats import summarize

SIZES = (10, 1000, 10000)
QUICK_SIZES = (10, 10000)  # --quick: the two ends only
DUE_TASKS = 5
DUE_PER_TICK = (0, 1, 5)
WINDOWS = {"full": (15.0, 20.0), "quick": (2.0, 1.5)}
TICKS = {"full": 300, "quick": 40}


def _noop() -> None:
    return None


def _build(size: int, due: int, tmp: Path, lateness: list[float], *, clock=None, run_loop: bool = True):
    """A started Scheduler with `due` 1 s tasks and `size - due` hourly, already-run tasks."""
    from bench.common import bench_settings, open_database
    from servicescheduler.scheduler import Scheduler
    from servicescheduler.scheduling.registry import TaskRegistry
    from servicescheduler.scheduling.triggers import Trigger
    from servicescheduler.storage.models import TaskState

    settings = bench_settings(tmp)
    database = open_database(settings)
    now = datetime.now(UTC)
    idle = [f"idle-{i}" for i in range(size - due)]
    if idle:
        with database.session() as session:
            # The Table itself (`__table__` is typed as a FromClause): a Core bulk insert, no ORM.
            table = TaskState.metadata.tables[TaskState.__tablename__]
            session.execute(
                table.insert(),
                [
                    dict(
                        name=n,
                        enabled=True,
                        interval_seconds=None,
                        last_run_scheduled_for=now,
                        last_success_at=now,
                        updated_at=now,
                    )
                    for n in idle
                ],
            )
    registry = TaskRegistry()
    hourly, every_second = Trigger.interval(3600), Trigger.interval(1)
    for name in idle:
        registry.register(name, _noop, trigger=hourly)
    for i in range(due):
        registry.register(
            f"due-{i}", lambda ctx: lateness.append(time.time() - ctx.scheduled_for), trigger=every_second
        )
    scheduler = Scheduler(settings, database, registry, **({"clock": clock} if clock else {}))
    scheduler.start(run_loop=run_loop)
    return scheduler, database


def _tick_costs(size: int, due: int, ticks: int) -> dict:
    """CPU (thread CPU clock) of `scheduler.tick(now)` called directly, with a fake clock.

    No loop thread: the bench thread calls tick() itself. `due` tasks every 1 s are due on every
    tick (the fake clock advances 1 s per tick); the rest are hourly and never due. Runs are left
    to finish (outside the timed call) before the next tick, so every due run takes the normal
    path (run record, metrics, thread-pool submit).
    """
    clock = [time.time()]
    scheduler, database = _build(
        size, due, Path(tempfile.mkdtemp(prefix="bench-tick-")), [], clock=lambda: clock[0], run_loop=False
    )
    samples: list[float] = []
    started_runs = 0
    try:
        for i in range(ticks + 5):  # bounded; 5 warm-up ticks (start-up runs, pool threads)
            t0 = time.thread_time()
            scheduler.tick(clock[0])
            t1 = time.thread_time()
            if i >= 5:
                samples.append(t1 - t0)
                started_runs += len(scheduler.running_tasks())
            scheduler.wait_idle(5.0)
            clock[0] += 1.0
    finally:
        scheduler.stop(timeout=5)
        database.dispose()
    return {"due": due, "ticks": len(samples), "runs_seen_running": started_runs, "us": summarize(samples, 1e6, 2)}


def tick_costs(size: int, ticks: int) -> dict:
    """tick() cost (p50 µs) with 0, 1 and 5 due tasks, split into the fixed cost of a wake-up
    (nothing to dispatch), the first due run of a tick and each further due run."""
    rows = {str(k): _tick_costs(size, k, ticks) for k in DUE_PER_TICK}
    c0, c1, c5 = (rows[str(k)]["us"]["p50"] for k in DUE_PER_TICK)
    return {
        "by_due": rows,
        "fixed_us": c0,
        "first_due_run_us": round(c1 - c0, 2),
        "extra_due_run_us": round((c5 - c1) / 4, 2),
        "one_due_us": c1,
        "five_due_us": c5,
    }


def _loop_cpu(scheduler) -> float:
    return time.clock_gettime(time.pthread_getcpuclockid(scheduler._thread.ident))


def _active_phase(size: int, seconds: float) -> dict:
    lateness: list[float] = []
    before = proc_status()
    started = time.perf_counter()
    scheduler, database = _build(size, DUE_TASKS, Path(tempfile.mkdtemp(prefix="bench-scale-")), lateness)
    startup_s = time.perf_counter() - started
    time.sleep(1.5)  # start-up runs of the 1 s tasks settle
    after = proc_status()
    lateness.clear()
    cpu0, wake0 = _loop_cpu(scheduler), scheduler.wakeups
    time.sleep(seconds)
    cpu1, wake1 = _loop_cpu(scheduler), scheduler.wakeups
    scheduler.stop(timeout=5)
    database.dispose()
    wakeups = max(1, wake1 - wake0)
    return {
        "startup_s": round(startup_s, 3),
        "wakeups": wake1 - wake0,
        "us_per_wakeup": round((cpu1 - cpu0) / wakeups * 1e6, 2),
        "lateness_ms": summarize(lateness, 1000),
        "rss_delta_mib": round(after.get("rss_mib", 0) - before.get("rss_mib", 0), 1),
    }


def _idle_phase(size: int, seconds: float) -> dict:
    scheduler, database = _build(size, 0, Path(tempfile.mkdtemp(prefix="bench-idle-")), [])
    time.sleep(0.5)
    cpu0, wake0, t0 = process_cpu_seconds(), scheduler.wakeups, time.perf_counter()
    time.sleep(seconds)
    cpu1, wake1, t1 = process_cpu_seconds(), scheduler.wakeups, time.perf_counter()
    scheduler.stop(timeout=5)
    database.dispose()
    return {
        "idle_cpu_pct": round(100 * (cpu1 - cpu0) / (t1 - t0), 3),
        "idle_wakeups": wake1 - wake0,
        "idle_window_s": round(t1 - t0, 1),
    }


def _seed_costs(size: int) -> dict:
    """run_pending() + idle_seconds() of the seed's schedule.Scheduler with the same jobs."""
    import schedule

    before = proc_status()
    sched = schedule.Scheduler()
    for _ in range(size - DUE_TASKS):
        sched.every(3600).seconds.do(_noop)
    for _ in range(DUE_TASKS):
        sched.every(1).seconds.do(_noop)
    after = proc_status()
    repeats = max(5, min(2000, 200_000 // size))
    started = time.perf_counter()
    for _ in range(repeats):
        sched.run_pending()  # nothing is due yet: the pure scan cost
    pending_us = (time.perf_counter() - started) / repeats * 1e6
    started = time.perf_counter()
    for _ in range(repeats):
        _ = sched.idle_seconds
    idle_us = (time.perf_counter() - started) / repeats * 1e6
    return {
        "run_pending_us": round(pending_us, 2),
        "idle_seconds_us": round(idle_us, 2),
        "us_per_wakeup": round(pending_us + idle_us, 2),
        "idle_cpu_pct_computed": round(100 * (pending_us + idle_us) / 1e6 / 5.0, 4),
        "rss_delta_mib": round(after.get("rss_mib", 0) - before.get("rss_mib", 0), 1),
    }


def worker(size: int, active_s: float, idle_s: float, ticks: int) -> dict:
    """All measurements for one size (run in a fresh process)."""
    ensure_path()
    seed = _seed_costs(size)
    return {
        "size": size,
        "tick": tick_costs(size, ticks),
        "product": {**_active_phase(size, active_s), **_idle_phase(size, idle_s)},
        "seed": seed,
    }


def measure(quick: bool, sizes: tuple[int, ...] | None = None) -> dict:
    """Benchmark 3 for every size; each size in its own subprocess."""
    sizes = sizes or (QUICK_SIZES if quick else SIZES)
    active_s, idle_s = WINDOWS["quick" if quick else "full"]
    ticks = TICKS["quick" if quick else "full"]
    results = {}
    env = dict(os.environ, LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT))
    for size in sizes:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.scale.measure", str(size), str(active_s), str(idle_s), str(ticks)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=active_s + idle_s + 240,
        )
        if proc.returncode != 0:
            results[str(size)] = {"error": proc.stderr.strip()[-800:]}
            continue
        results[str(size)] = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"windows_s": {"active": active_s, "idle": idle_s}, "ticks": ticks, "sizes": results}


if __name__ == "__main__":
    print(json.dumps(worker(int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))))
