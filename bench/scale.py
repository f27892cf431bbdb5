"""Benchmark 3: cost of a wake-up, lateness and idle behaviour with 10 to 10,000 tasks.

Per size, one subprocess (`python -m bench.scale N ACTIVE_S IDLE_S`) builds the product with
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
from datetime import datetime, timezone
from pathlib import Path

from bench.common import ROOT, ensure_path, proc_status, process_cpu_seconds
from bench.stats import summarize

SIZES = (10, 1000, 10000)
DUE_TASKS = 5
WINDOWS = {"full": (15.0, 20.0), "quick": (3.0, 3.0)}


def _noop() -> None:
    return None


def _build(size: int, due: int, tmp: Path, lateness: list[float]):
    """A started ServiceScheduler with `due` 1 s tasks and `size - due` hourly, already-run tasks."""
    from bench.common import bench_settings, open_database
    from registry import TaskRegistry
    from scheduler import ServiceScheduler
    from storage.models import TaskState
    from triggers import Trigger

    settings = bench_settings(tmp)
    database = open_database(settings)
    now = datetime.now(timezone.utc)
    idle = [f"idle-{i}" for i in range(size - due)]
    if idle:
        with database.session() as session:
            session.execute(TaskState.__table__.insert(), [
                dict(name=n, enabled=True, interval_seconds=None, last_run_scheduled_for=now,
                     last_success_at=now, updated_at=now) for n in idle])
    registry = TaskRegistry()
    hourly, every_second = Trigger.interval(3600), Trigger.interval(1)
    for name in idle:
        registry.register(name, _noop, trigger=hourly)
    for i in range(due):
        registry.register(f"due-{i}", lambda ctx: lateness.append(time.time() - ctx.scheduled_for),
                          trigger=every_second)
    scheduler = ServiceScheduler(settings, database, registry)
    scheduler.start()
    return scheduler, database


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
    return {"startup_s": round(startup_s, 3), "wakeups": wake1 - wake0,
            "us_per_wakeup": round((cpu1 - cpu0) / wakeups * 1e6, 2),
            "lateness_ms": summarize(lateness, 1000),
            "rss_delta_mib": round(after.get("rss_mib", 0) - before.get("rss_mib", 0), 1)}


def _idle_phase(size: int, seconds: float) -> dict:
    scheduler, database = _build(size, 0, Path(tempfile.mkdtemp(prefix="bench-idle-")), [])
    time.sleep(0.5)
    cpu0, wake0, t0 = process_cpu_seconds(), scheduler.wakeups, time.perf_counter()
    time.sleep(seconds)
    cpu1, wake1, t1 = process_cpu_seconds(), scheduler.wakeups, time.perf_counter()
    scheduler.stop(timeout=5)
    database.dispose()
    return {"idle_cpu_pct": round(100 * (cpu1 - cpu0) / (t1 - t0), 3), "idle_wakeups": wake1 - wake0,
            "idle_window_s": round(t1 - t0, 1)}


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
        sched.idle_seconds
    idle_us = (time.perf_counter() - started) / repeats * 1e6
    return {"run_pending_us": round(pending_us, 2), "idle_seconds_us": round(idle_us, 2),
            "us_per_wakeup": round(pending_us + idle_us, 2),
            "idle_cpu_pct_computed": round(100 * (pending_us + idle_us) / 1e6 / 5.0, 4),
            "rss_delta_mib": round(after.get("rss_mib", 0) - before.get("rss_mib", 0), 1)}


def worker(size: int, active_s: float, idle_s: float) -> dict:
    """All measurements for one size (run in a fresh process)."""
    ensure_path()
    seed = _seed_costs(size)
    return {"size": size, "product": {**_active_phase(size, active_s), **_idle_phase(size, idle_s)},
            "seed": seed}


def measure(quick: bool, sizes: tuple[int, ...] = SIZES) -> dict:
    """Benchmark 3 for every size; each size in its own subprocess."""
    active_s, idle_s = WINDOWS["quick" if quick else "full"]
    results = {}
    env = dict(os.environ, LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT))
    for size in sizes:
        proc = subprocess.run([sys.executable, "-m", "bench.scale", str(size), str(active_s), str(idle_s)],
                              cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=active_s + idle_s + 240)
        if proc.returncode != 0:
            results[str(size)] = {"error": proc.stderr.strip()[-800:]}
            continue
        results[str(size)] = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"windows_s": {"active": active_s, "idle": idle_s}, "sizes": results}


if __name__ == "__main__":
    print(json.dumps(worker(int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]))))
