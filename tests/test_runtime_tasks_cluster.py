"""A task created over HTTP on one of three replicas (real processes, one PostgreSQL database)
runs once per slot cluster-wide, switches to a cron line everywhere within 1 s of a PATCH on
another, and stops everywhere within 1 s of its DELETE on the third."""

from __future__ import annotations

import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from devtools.replicas import AUTH, ServerProcess, wait_ready
from servicescheduler.storage.models import TaskRun
from servicescheduler.support.clock import to_epoch
from tests.conftest import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.realtime]

MODULE = textwrap.dedent("""
    from servicescheduler.scheduling import TaskContext, tasks

    @tasks.function("stamp")
    def stamp(ctx: TaskContext, *, note: str) -> None:
        assert note == "from-a"
""")
TASK = {"name": "rt", "function": "stamp", "trigger": {"interval_seconds": 1}, "kwargs": {"note": "from-a"}}


def _runs(database_url: str) -> list[tuple[float | None, float | None, str | None, str | None]]:
    """(scheduled_for, started_at, outcome, replica) of every run of `rt`, read from the database
    (the API forgets a deleted task; its history stays)."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(TaskRun.scheduled_for, TaskRun.started_at, TaskRun.outcome, TaskRun.replica).where(
                    TaskRun.task == "rt"
                )
            ).all()
    finally:
        engine.dispose()
    return [(to_epoch(slot), to_epoch(started), outcome, replica) for slot, started, outcome, replica in rows]


def _until_all(servers: list[ServerProcess], status: int, since: float, schedule: str | None = None) -> float:
    """Seconds from `since` until every server answers GET /tasks/rt with `status` (and shows
    `schedule`); fails past 1 s."""

    def shown(server: ServerProcess) -> bool:
        response = server.client.get("/tasks/rt")
        return response.status_code == status and (schedule is None or response.json()["schedule"] == schedule)

    pending = list(servers)
    while pending and time.time() - since <= 1.0:
        pending = [server for server in pending if not shown(server)]
        time.sleep(0.01)  # poll interval
    assert not pending, f"{[s.name for s in pending]} did not answer {status} {schedule or ''} within 1 s"
    return time.time() - since


@pytest.mark.timeout(120)
def test_a_runtime_task_runs_once_per_slot_on_three_replicas_and_stops_within_1s_of_delete(
    tmp_path: Path, servers: list[ServerProcess], cluster_database_url: str
) -> None:
    (tmp_path / "runtimetasks.py").write_text(MODULE)
    env = {"DATABASE_URL": cluster_database_url, "TASK_MODULES": "runtimetasks", "CLUSTER_REPLICA_TTL_SECONDS": "3"}
    servers.extend(ServerProcess(tmp_path, f"replica-{index}", env) for index in range(3))
    wait_ready(servers)
    a, b, c = servers

    created = a.post("/tasks", TASK)
    assert created.status_code == 201, created.text
    created_seen = _until_all([b, c], 200, time.time())
    assert all(server.get("/tasks/rt")["origin"] == "runtime" for server in servers)

    # About ten slots: each once, on one grid, none missing, whichever replica won it.
    wait_until(lambda: len(_runs(cluster_database_url)) >= 10, timeout=30, interval=0.5)

    # A PATCH on another replica switches it to a cron line (every even second) everywhere.
    patched = b.patch("/tasks/rt", {"trigger": {"cron": "*/2 * * * * *", "tz": "UTC"}})
    switched_at = time.time()
    assert patched.status_code == 200, patched.text
    patched_seen = _until_all([a, c], 200, switched_at, "cron '*/2 * * * * *' UTC")
    wait_until(
        lambda: len([run for run in _runs(cluster_database_url) if (run[0] or 0) > switched_at + 1]) >= 3,
        timeout=20,
        interval=0.5,
    )
    response = c.client.delete("/tasks/rt", headers=AUTH)
    deleted_at = time.time()
    assert response.status_code == 204, response.text
    deleted_seen = _until_all([a, b], 404, deleted_at)

    time.sleep(2.5)  # the absence of runs is what is asserted: two 1 s slots past the allowed second
    runs = _runs(cluster_database_url)
    late = [run for run in runs if (run[1] or 0) > deleted_at + 1.0]
    assert late == [], f"runs started more than 1 s after the DELETE: {late}"
    slots = sorted(run[0] for run in runs if run[0] is not None and run[2] != "missed")
    duplicated = {slot: n for slot, n in Counter(slots).items() if n > 1}
    assert not duplicated, f"slots run more than once: {duplicated}"
    before = [slot for slot in slots if slot < switched_at]
    gaps = [later - earlier for earlier, later in zip(before, before[1:], strict=False)]
    assert all(abs(gap - 1.0) < 0.001 for gap in gaps), f"slots off a common 1 s grid or missing: {before}"
    after = [slot for slot in slots if slot > switched_at + 1]
    assert after and all(slot % 2 == 0 for slot in after), f"cron slots not on even seconds: {after}"
    assert all(run[2] == "success" for run in runs), runs
    print(
        f"created seen by all in {created_seen * 1000:.0f} ms, patched in {patched_seen * 1000:.0f} ms, "
        f"deleted in {deleted_seen * 1000:.0f} ms; {len(slots)} slots on {len({run[3] for run in runs})} replicas"
    )
