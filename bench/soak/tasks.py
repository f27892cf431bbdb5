"""The soak's 20 tasks, each every 1 s, served by the real app through `TASK_MODULES=bench.soak.tasks`.

Every run appends `<task> <run_id>` to the file named by SOAK_RUNS_FILE once its body has done its
work, so the harness can check afterwards that every run the tasks saw has a row in `task_runs`.
Sync tasks run a query through the app's connection pool; every fourth task is `async def` (a fresh
event loop per run), so a leak in either path shows in the soak's threads and descriptors.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from sqlalchemy import text

from bench.soak.heap import start_heap_probe
from bench.soak.task_plan import is_async, task_names
from servicescheduler.scheduling import TaskContext, every, tasks

RUNS_FILE_VARIABLE = "SOAK_RUNS_FILE"

# One descriptor for the server's lifetime (not one per run, which would blur the fd samples).
# O_APPEND makes each short os.write land whole at the end, whichever thread writes it.
_RUNS_FD: int | None = None


def _runs_fd() -> int:
    global _RUNS_FD
    if _RUNS_FD is None:
        path = os.environ.get(RUNS_FILE_VARIABLE)
        if not path:  # each run then fails with this reason in its history row
            raise RuntimeError(f"{RUNS_FILE_VARIABLE} is not set: these tasks are for `python -m bench.soak`")
        _RUNS_FD = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    return _RUNS_FD


def count_run(ctx: TaskContext) -> None:
    """Appends this run to the runs file (one write, so lines never interleave)."""
    os.write(_runs_fd(), f"{ctx.task} {ctx.run_id}\n".encode())


def _sync_body() -> Callable[[TaskContext], None]:
    def body(ctx: TaskContext) -> None:
        with ctx.database.read_session() as session:
            session.execute(text("SELECT 1"))
        count_run(ctx)

    return body


def _async_body() -> Callable[[TaskContext], Any]:
    async def body(ctx: TaskContext) -> None:
        await asyncio.sleep(0.005)
        count_run(ctx)

    return body


# Imported once per server process (TASK_MODULES): the heap probe samples it from inside.
start_heap_probe()

for _index, _name in enumerate(task_names()):
    tasks.register(
        _name,
        _async_body() if is_async(_index) else _sync_body(),
        trigger=every(1).seconds,
        description="soak load: counts its own runs for the run-history check",
    )
