"""Benchmark 12's GC row: how long a full collection holds every thread of a started service.

The reference service (`server.create_app`, its built-in tasks, SQLite) is started in a fresh
process (`python -m bench.cluster.gc_pause`), then `gc.collect()` is timed as it is, and again
after `gc.collect(); gc.freeze()` (what GC_FREEZE_ON_START does at start). A full collection
holds the GIL for its whole walk: the scheduler's loop cannot start a due run meanwhile, which
is how a replica's 1 s task came to start 20 ms late now and then.
"""

from __future__ import annotations

import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, ensure_path

ROUNDS = 5


def _collect_ms() -> float:
    started = time.perf_counter()
    gc.collect()
    return (time.perf_counter() - started) * 1000


def _in_service() -> dict[str, object]:
    """Subprocess entry: the started service's full-collection time, unfrozen then frozen."""
    ensure_path()
    from bench.common import bench_settings
    from server import create_app

    settings = bench_settings(Path(tempfile.mkdtemp(prefix="bench-gc-")), builtin_tasks="all")
    scheduler = create_app(settings).state.servicescheduler
    scheduler.start()
    try:
        unfrozen = [_collect_ms() for _ in range(ROUNDS)]
        gc.freeze()
        frozen = [_collect_ms() for _ in range(ROUNDS)]
        tracked = len(gc.get_objects())
    finally:
        scheduler.stop()
    return {
        "unfrozen_ms": round(statistics.median(unfrozen), 2),
        "frozen_ms": round(statistics.median(frozen), 2),
        "frozen_objects": gc.get_freeze_count(),
        "tracked_after_freeze": tracked,
        "rounds": ROUNDS,
    }


def measure() -> dict[str, object]:
    """Runs `_in_service` in a fresh interpreter (the bench's own objects must not count)."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.cluster.gc_pause"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(json.dumps(_in_service()))
