"""The soak's bookkeeping against the server's database: what was stored and what was recorded.

Read through a plain DB-API connection (`connect`, from bench.soak.database: the harness never
imports the app's models, so it measures the database as any other reader would). During the run,
counts are read in short transactions; at the end, after the server stopped, the full sets are
compared, by id, with what the producer and the tasks counted.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

Connect = Callable[[], Any]


def count_rows(connect: Connect, table: str) -> int | None:
    """Rows in `table` now, or None when the database cannot be read (yet)."""
    try:
        with contextlib.closing(connect()) as conn:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608 (fixed names)
    except Exception:  # noqa: BLE001 (sqlite3.Error, psycopg.Error: a sample without the figure)
        return None


def read_counted_runs(runs_file: Path) -> list[tuple[str, str]]:
    """(task, run_id) of every run the soak tasks counted (see bench.soak.tasks)."""
    try:
        lines = runs_file.read_text().splitlines()
    except OSError:
        return []
    return [(parts[0], parts[1]) for parts in (line.split() for line in lines) if len(parts) == 2]


def final_accounting(
    connect: Connect, runs_file: Path, acked_ids: set[str], acked_bad: int, soak_tasks: list[str]
) -> dict[str, Any]:
    """Events produced vs stored vs dead-lettered, and runs counted vs recorded, by id."""
    with contextlib.closing(connect()) as conn:
        stored_ids = {row[0] for row in conn.execute("SELECT id FROM ss_events")}
        dead = int(conn.execute("SELECT count(*) FROM ss_dead_letters").fetchone()[0])
        runs = conn.execute("SELECT run_id, task, outcome, scheduled_for FROM ss_task_runs").fetchall()
    recorded = {run_id for run_id, *_ in runs}
    counted = read_counted_runs(runs_file)
    unrecorded = [run_id for _, run_id in counted if run_id not in recorded]
    outcomes = Counter(outcome for _, task, outcome, _ in runs if task in soak_tasks)
    slots = Counter(
        (task, scheduled)
        for _, task, outcome, scheduled in runs
        if scheduled is not None and outcome in ("success", "error", "timeout")
    )
    produced = len(acked_ids) + acked_bad
    return {
        "produced": produced,
        "produced_good": len(acked_ids),
        "produced_malformed": acked_bad,
        "stored": len(stored_ids),
        "dead_lettered": dead,
        "missing_ids": len(acked_ids - stored_ids),
        "unexpected_ids": len(stored_ids - acked_ids),
        "runs_counted": len(counted),
        "runs_unrecorded": len(unrecorded),
        "unrecorded_sample": unrecorded[:10],
        "run_rows": len(runs),
        "soak_run_outcomes": dict(outcomes),
        "slots_run_twice": sum(1 for n in slots.values() if n > 1),
        "runs_per_task": dict(Counter(task for _, task, *_ in runs)),
    }


def history_vs_stats(rows_per_task: dict[str, int], stats: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per task: runs the scheduler counted (GET /tasks before the stop) vs rows in task_runs after
    it; the rows can only be more (runs after the snapshot), never fewer."""
    out = []
    for task in stats:
        counts = task.get("stats") or {}
        counted = sum(int(counts.get(k, 0)) for k in ("runs", "skipped", "missed"))
        rows = rows_per_task.get(task["name"], 0)
        out.append({"task": task["name"], "scheduler_counted": counted, "rows": rows, "short": max(0, counted - rows)})
    return out
