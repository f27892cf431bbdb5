"""Benchmark 12, claim curve: what slot claims cost as replicas are added (`python -m bench.cluster.claim_curve`).

Every replica plans every slot and tries to claim it, so claim attempts grow as replicas × slots.
Here 1, 3, 10 and 30 `DatabaseCoordinator`s (each with its own engine and connection, as separate
replicas have) share one fresh PostgreSQL database. Each coordinator runs on a thread of its
own; for every slot all of them call `admit()` at the same moment (a barrier: replicas fire a slot
at the same due time, which is the contended case), the winner `release()`s. Measured per replica
count: claim attempts per second (all attempts / wall time), the latency of one attempt (p50,
p99), and that every slot had exactly one winner; next to the same harness doing a `SELECT 1`
transaction per attempt (the floor of any round trip at that concurrency). Threads of one
process, not processes: on this 2-core machine 30 processes would measure the scheduler of the OS
more than the database, but the GIL's hand-offs are in the latencies here.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import ensure_path
from bench.stats import summarize

ensure_path()

REPLICAS = (1, 3, 10, 30)
TASKS = 10  # slots go round-robin over this many tasks (a task's lease is released before its next slot)


def _coordinators(url: str, count: int) -> tuple[list[Any], list[Any]]:
    from bench.common import bench_settings, open_database
    from servicescheduler.scheduling.coordination import DatabaseCoordinator
    from servicescheduler.storage.db import Database

    tmp = Path(tempfile.mkdtemp(prefix="bench-claim-curve-"))
    settings = bench_settings(tmp, database_url=url)
    databases = [open_database(settings)] + [Database(settings) for _ in range(count - 1)]
    coordinators = [
        DatabaseCoordinator(db, ttl_seconds=15, clock=time.time, replica_id=f"sim-{index}")
        for index, db in enumerate(databases)
    ]
    return coordinators, databases


def curve_point(url: str, replicas: int, slots: int, *, floor: bool = False) -> dict[str, Any]:
    """`replicas` coordinators racing for `slots` slots on database `url`; with `floor`, each
    attempt is a `SELECT 1` transaction instead (same threads, engines and barrier): the part of
    the latency that any round trip pays at this concurrency on this machine."""
    from sqlalchemy import text

    from servicescheduler.scheduling.launcher import new_run_id
    from servicescheduler.storage.records import RunRecord

    coordinators, databases = _coordinators(url, replicas)
    barrier = threading.Barrier(replicas)
    base = float(int(time.time()))
    latencies: list[list[float]] = [[] for _ in coordinators]
    wins: list[list[int]] = [[] for _ in coordinators]
    errors: list[str] = []

    def replica(index: int) -> None:
        coordinator = coordinators[index]
        try:
            for slot in range(slots):
                task, due = f"task-{slot % TASKS}", base + slot // TASKS
                run = RunRecord(new_run_id(), task, "schedule", due, time.time())
                barrier.wait(timeout=60)
                t0 = time.perf_counter()
                if floor:
                    with coordinator.database.session() as session:
                        session.execute(text("SELECT 1"))
                    latencies[index].append(time.perf_counter() - t0)
                    continue
                refused = coordinator.admit(task, run)
                latencies[index].append(time.perf_counter() - t0)
                if refused is None:
                    wins[index].append(slot)
                    coordinator.release(task, run.run_id)
        except Exception as exc:  # noqa: BLE001  (reported; the barrier is broken for the others)
            errors.append(f"{type(exc).__name__}: {exc}")
            barrier.abort()

    threads = [threading.Thread(target=replica, args=(i,), name=f"sim-replica-{i}") for i in range(replicas)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    wall = time.perf_counter() - started
    for database in databases:
        with contextlib.suppress(Exception):
            database.dispose()
    won = sorted(slot for per in wins for slot in per)
    attempts = sum(len(per) for per in latencies)
    return {
        "replicas": replicas,
        "slots": slots,
        "attempts": attempts,
        "wall_s": round(wall, 3),
        "attempts_per_s": round(attempts / wall) if wall > 0 else None,
        "slots_per_s": round(slots / wall, 1) if wall > 0 else None,
        "attempt_ms": summarize([v for per in latencies for v in per], 1000),
        "slots_won": len(won),
        "slots_won_twice": len(won) - len(set(won)),
        "errors": errors[:3],
    }


def measure(quick: bool) -> dict[str, Any]:
    """The curve on a fresh PostgreSQL database per replica count (quick: fewer slots)."""
    from bench.postgres import fresh_database

    slots = 60 if quick else 300
    points = []
    for count in REPLICAS:
        with fresh_database("bench_claims") as url:
            point = curve_point(url, count, slots)
            point["select1_ms"] = curve_point(url, count, slots, floor=True)["attempt_ms"]
            points.append(point)
    return {"slots": slots, "tasks": TASKS, "points": points}


if __name__ == "__main__":
    import json
    import sys

    try:
        print(json.dumps(measure("--quick" in sys.argv), indent=1))
    finally:
        from bench.postgres import shutdown

        shutdown()
