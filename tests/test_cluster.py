"""Several replicas on one database, as real server processes: one run per slot cluster-wide,
toggles and PATCH everywhere within 1 s, a killed replica's run interrupted and its slots taken
over, and `uvicorn --workers 3` on SQLite running each slot once."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from devtools.replicas import ServerProcess, epoch, wait_ready, write_task_module
from tests.conftest import wait_until

TTL_SECONDS = 3.0
pytestmark = [pytest.mark.slow, pytest.mark.realtime]


def _runs(server: ServerProcess, task: str) -> list[dict[str, Any]]:
    return list(server.get(f"/tasks/{task}/runs", limit=500))


def _slots(runs: list[dict[str, Any]], *, since: float = 0.0, until: float = float("inf")) -> list[float]:
    """scheduled_for of the scheduled runs in [since, until), sorted (duplicates kept)."""
    found = [epoch(run["scheduled_for"]) for run in runs if run["scheduled_for"] is not None]
    return sorted(slot for slot in found if slot is not None and since <= slot < until)


def _assert_one_run_per_slot(runs: list[dict[str, Any]]) -> None:
    duplicated = {slot: n for slot, n in Counter(_slots(runs)).items() if n > 1}
    assert not duplicated, f"slots run more than once: {duplicated}"


def _missing(slots: list[float], period: float) -> int:
    """Slots absent from an ascending sequence on a `period` grid; fails if a run is off the grid
    (replicas planning their own grids) or two runs share a slot."""
    gaps = [later - earlier for earlier, later in zip(slots, slots[1:], strict=False)]
    off_grid = [gap for gap in gaps if gap < period - 0.001 or abs(gap / period - round(gap / period)) > 0.001]
    assert not off_grid, f"runs off a common {period} s grid: {slots}"
    return sum(round(gap / period) - 1 for gap in gaps)


def _start_cluster(tmp_path: Path, servers: list[ServerProcess], database_url: str, count: int) -> None:
    module = write_task_module(tmp_path)
    env = {"DATABASE_URL": database_url, "TASK_MODULES": module, "CLUSTER_REPLICA_TTL_SECONDS": str(TTL_SECONDS)}
    servers.extend(ServerProcess(tmp_path, f"replica-{index}", env) for index in range(count))
    wait_ready(servers)


@pytest.mark.timeout(150)
def test_three_replicas_share_one_schedule_toggles_and_failover(tmp_path, servers, cluster_database_url) -> None:
    _start_cluster(tmp_path, servers, cluster_database_url, 3)
    a, b, c = servers
    started = time.time()
    window = _window_of(a, since=started + 1, slots=18, timeout=40)  # the measurement window (~18 s)
    assert _missing(window, 1.0) == 0, window
    assert all(run["replica"] for run in _runs(a, "tick")), "every run row names its replica"

    # A toggle sent to one replica stops runs on all within 1 s.
    a.post("/tasks/tick/disable").raise_for_status()
    disabled_at = time.time()
    _seen_by_all([b, c], "enabled", False, since=disabled_at)
    _no_run_starts_late(b, disabled_at + 1.0, watch=2.5)

    # PATCH on one is seen by all within 1 s; enabling on another resumes on the new grid.
    c.patch("/tasks/tick", {"interval_seconds": 2}).raise_for_status()
    _seen_by_all([a, b], "interval_seconds", 2, since=time.time())
    b.post("/tasks/tick/enable").raise_for_status()
    _seen_by_all([a, c], "enabled", True, since=time.time())

    _kill_the_replica_running_slow_and_fail_over(servers)
    for task in ("tick", "slow"):
        _assert_one_run_per_slot(_runs(servers[0], task))


def _window_of(server: ServerProcess, *, since: float, slots: int, timeout: float) -> list[float]:
    """`tick`'s slots from `since` to 1 s ago, once there are `slots` of them (fails after `timeout`)."""

    def window() -> list[float] | None:
        found = _slots(_runs(server, "tick"), since=since, until=time.time() - 1)
        return found if len(found) >= slots else None

    found: list[float] = wait_until(window, timeout=timeout, interval=0.5)
    return found


def _no_run_starts_late(server: ServerProcess, after: float, *, watch: float) -> None:
    """Watches `tick`'s runs for `watch` s and fails at the first one started after `after`.

    The absence of runs is what is asserted, so this one must take its time: 2.5 s covers two
    1 s slots past the allowed second."""
    deadline = time.monotonic() + watch
    while True:
        late = [run for run in _runs(server, "tick") if (epoch(run["started_at"]) or 0) > after]
        assert late == [], f"runs started more than 1 s after the disable: {late}"
        if time.monotonic() >= deadline:
            return
        time.sleep(0.2)  # poll interval of the watch


def _seen_by_all(servers: list[ServerProcess], field: str, value: object, *, since: float) -> None:
    """Waits until every server shows `tick`'s `field` == `value`; fails if that took over 1 s."""
    pending = list(servers)
    while pending and time.time() - since <= 1.0:
        pending = [server for server in pending if server.get("/tasks/tick")[field] != value]
        time.sleep(0.01)
    assert not pending, f"{[s.name for s in pending]} did not show {field}={value!r} within 1 s"


def _kill_the_replica_running_slow_and_fail_over(servers: list[ServerProcess]) -> None:
    by_id = {server.get("/cluster")["self"]: server for server in servers}

    def fresh_holder() -> str | None:
        """The replica running `slow` if its run started under 1 s ago (2 s of it left to act)."""
        for replica_id in _running("slow", servers[0]):
            current = by_id[replica_id].get("/tasks/slow")["current_run"]
            if current and time.time() - (epoch(current["started_at"]) or 0) < 1.0:
                return replica_id
        return None

    holder_id = wait_until(fresh_holder, timeout=15, interval=0.05)
    victim = by_id[str(holder_id)]
    survivors = [server for server in servers if server is not victim]
    busy = survivors[0].post("/tasks/slow/run")
    assert busy.status_code == 409 and holder_id in busy.json()["detail"], busy.text
    victim.kill()
    killed_at = time.time()
    survivor = survivors[0]

    def interrupted() -> list[dict[str, Any]]:
        return [run for run in _runs(survivor, "slow") if run["outcome"] == "interrupted"]

    runs: Any = wait_until(interrupted, timeout=TTL_SECONDS + 6)
    assert runs[0]["replica"] == holder_id
    view = survivor.get("/cluster")
    dead = [replica for replica in view["replicas"] if replica["id"] == holder_id]
    wait_until(lambda: not _alive(survivor, str(holder_id)), timeout=TTL_SECONDS + 2)
    assert dead, view

    def slow_ran_elsewhere() -> bool:
        return any(
            epoch(run["started_at"]) > killed_at and run["outcome"] == "success" and run["replica"] != holder_id
            for run in _runs(survivor, "slow")
        )

    wait_until(slow_ran_elsewhere, timeout=TTL_SECONDS + 10)
    tick = _slots(_runs(survivor, "tick"), since=killed_at - 2)
    gaps = [later - earlier for earlier, later in zip(tick, tick[1:], strict=False)]
    assert gaps and max(gaps) <= TTL_SECONDS + 2, f"tick slots after the kill: {tick}"
    servers.remove(victim)


def _running(task: str, server: ServerProcess) -> list[str]:
    return [
        replica["id"]
        for replica in server.get("/cluster")["replicas"]
        if replica["alive"] and task in replica["running"]
    ]


def _alive(server: ServerProcess, replica_id: str) -> bool:
    return any(replica["alive"] for replica in server.get("/cluster")["replicas"] if replica["id"] == replica_id)


@pytest.mark.timeout(90)
def test_uvicorn_workers_on_sqlite_run_each_slot_once(tmp_path, servers) -> None:
    module = write_task_module(tmp_path)
    server = ServerProcess(
        tmp_path, "workers", {"DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}", "TASK_MODULES": module}, workers=3
    )
    servers.append(server)
    wait_ready(servers)
    wait_until(lambda: len(server.get("/cluster")["replicas"]) == 3, timeout=20)
    started = time.time()
    window = _window_of(server, since=started, slots=9, timeout=30)
    _assert_one_run_per_slot(_runs(server, "tick"))
    assert _missing(window, 1.0) == 0, window
    assert "multiple_workers_detected" not in server.log_tail(500)
