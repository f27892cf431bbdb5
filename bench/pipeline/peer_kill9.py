"""Benchmark 7's kill -9 check of the FastStream peer: is it as durable as the product?

The peer runs as its own process (`python -m bench.pipeline.faststream_peer`) in one consumer
group on a topic of `count` events into one SQLite file; it is SIGKILLed `kills` times, each time
once the database shows new rows since the previous kill, and restarted in the same group; the
last run goes on until the database holds every message, or nothing new came for 20 s, or 120 s
passed. With offsets committed
after the transaction and idempotent inserts, the counts must be exact: a lost batch (offsets
committed before its rows were) shows as fewer events, dead letters or notifications.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import ROOT

IDLE_S = 20.0  # the last run: this long without a new row (after rows came) means it is done


def _counts(path: Path) -> dict[str, int]:
    try:
        with sqlite3.connect(path, timeout=5) as conn:
            return {
                "stored": conn.execute("SELECT count(*) FROM fs_events").fetchone()[0],
                "dead_lettered": conn.execute("SELECT count(*) FROM fs_dead_letters").fetchone()[0],
                "notifications": conn.execute("SELECT count(*) FROM fs_notifications").fetchone()[0],
            }
    except sqlite3.Error:  # not created yet
        return {"stored": 0, "dead_lettered": 0, "notifications": 0}


def kill9_check(client: str, bootstrap: str, topic: str, count: int, expected: dict[str, int], kills: int = 3) -> dict:
    """Counts after `kills` SIGKILLs and a final run, against `expected`."""
    path = Path(tempfile.mkdtemp(prefix="bench-fs-kill9-")) / "peer.db"
    group = f"bench-fs-kill9-{uuid.uuid4().hex[:8]}"
    command = [sys.executable, "-m", "bench.pipeline.faststream_peer", client, bootstrap, topic]
    command += [f"sqlite:///{path}", str(count), group]
    done_kills, before = 0, 0
    for attempt in range(kills + 1):
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        last_total, last_change = -1, time.monotonic()
        try:
            while time.monotonic() < deadline and process.poll() is None:
                now = _counts(path)
                total = now["stored"] + now["dead_lettered"]
                if total != last_total:
                    last_total, last_change = total, time.monotonic()
                elif attempt == kills and total and time.monotonic() - last_change > IDLE_S:
                    break  # caught up with what it will ever store: the rest was committed unstored
                if attempt < kills and total > before:  # progress since the last kill: kill mid-stream
                    time.sleep(0.05 * (attempt + 1))  # land at different points of a batch
                    process.kill()
                    done_kills += 1
                    before = total
                    break
                if total >= count:
                    break
                time.sleep(0.02)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(10)
    final = _counts(path)
    return {"client": client, "kills": done_kills, "counts": final, "expected": expected, "exact": final == expected}
