"""Short tasks for the kill -9 test, imported by the server subprocess through TASK_MODULES.

Each run first appends "<run_id> <epoch seconds>" to the file named by CRASH_WITNESS_FILE: an
independent witness that the run started, which the test checks against the run history.
"""

from __future__ import annotations

import asyncio
import os
import random
import time

from servicescheduler.scheduling import TaskContext, every, tasks


def _witness(ctx: TaskContext) -> None:
    line = f"{ctx.run_id} {time.time():.6f}\n".encode()
    # O_APPEND: one write() per line, so lines of concurrent runs never interleave.
    fd = os.open(os.environ["CRASH_WITNESS_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


@tasks.task("crash-short", trigger=every(1).seconds, description="kill -9 test: a short run")
def short(ctx: TaskContext) -> None:
    _witness(ctx)
    time.sleep(random.uniform(0.0, 0.3))


@tasks.task("crash-long", trigger=every(1).seconds, description="kill -9 test: often killed mid-run")
def long(ctx: TaskContext) -> None:
    _witness(ctx)
    time.sleep(random.uniform(0.5, 2.0))


@tasks.task("crash-async", trigger=every(1).seconds, description="kill -9 test: an async run")
async def async_run(ctx: TaskContext) -> None:
    _witness(ctx)
    await asyncio.sleep(random.uniform(0.1, 0.6))


@tasks.task("crash-failing", trigger=every(1).seconds, description="kill -9 test: fails half the time")
def failing(ctx: TaskContext) -> None:
    _witness(ctx)
    if random.random() < 0.5:
        raise RuntimeError("planned failure")


@tasks.task("crash-manual", trigger=every(1).hours, enabled=False, description="kill -9 test: started over HTTP only")
def manual(ctx: TaskContext) -> None:
    _witness(ctx)
    time.sleep(random.uniform(0.0, 0.5))
