"""The soak's task plan: how many tasks, their names, which are `async def`.

Kept apart from bench.soak.tasks, which declares the tasks when imported (into the shared registry
every app built without its own registry serves): the harness needs the names without that.
"""

from __future__ import annotations

TASK_COUNT = 20
ASYNC_EVERY = 4
NAME_PREFIX = "soak-"


def task_names() -> list[str]:
    """The names of the soak tasks, in declaration order."""
    return [f"{NAME_PREFIX}{index:02d}" for index in range(TASK_COUNT)]


def is_async(index: int) -> bool:
    """Whether soak task number `index` is an `async def` task (every fourth one)."""
    return index % ASYNC_EVERY == ASYNC_EVERY - 1
