"""Coordinators of several replicas on one real database (SQLite and PostgreSQL): each slot is
claimed once, the running lease is cluster-wide, a dead replica's run is recorded interrupted,
event requests coalesce onto the replica that runs the task."""

from __future__ import annotations

from typing import Any

import pytest

from servicescheduler.scheduling.coordination import UNCLAIMED, DatabaseCoordinator, grid_slot
from servicescheduler.scheduling.errors import TaskBusy
from servicescheduler.scheduling.launcher import new_run_id
from servicescheduler.storage.history import run_rows
from servicescheduler.storage.records import RunRecord
from servicescheduler.storage.task_state import TaskStateStore
from tests.conftest import FakeClock

TTL = 15.0
SLOT = 1_800_000_000.0


def _run(slot: float | None, trigger: str = "schedule") -> RunRecord:
    return RunRecord(new_run_id(), "job", trigger, slot, SLOT)


@pytest.fixture
def replicas(database_url, migrated):
    """Three coordinators (replicas a, b, c) on one migrated database, sharing a settable clock."""
    database = migrated(database_url)
    TaskStateStore(database).create({"job": (True, None)})
    clock = FakeClock(SLOT)
    return [DatabaseCoordinator(database, ttl_seconds=TTL, clock=clock, replica_id=name) for name in "abc"], clock


def test_each_slot_is_claimed_by_exactly_one_replica(replicas) -> None:
    (a, b, c), _ = replicas
    verdicts = [replica.admit("job", _run(SLOT)) for replica in (a, b, c)]
    assert verdicts[0] is None
    assert verdicts[1:] == [UNCLAIMED, UNCLAIMED] and all(v is UNCLAIMED for v in verdicts[1:])


def test_a_slot_due_while_another_replica_runs_is_skipped_once_cluster_wide(replicas) -> None:
    (a, b, c), _ = replicas
    first = _run(SLOT)
    assert a.admit("job", first) is None
    b_verdict, c_verdict = b.admit("job", _run(SLOT + 1)), c.admit("job", _run(SLOT + 1))
    assert (
        b_verdict not in (None, UNCLAIMED) and b_verdict.outcome == "skipped" and "replica a" in (b_verdict.error or "")
    )
    assert c_verdict is UNCLAIMED
    a.release("job", first.run_id)
    assert c.admit("job", _run(SLOT + 2)) is None  # the lease is free again


def test_a_manual_run_is_refused_while_a_run_is_in_progress_on_another_replica(replicas) -> None:
    (a, b, _), _ = replicas
    running = _run(SLOT)
    assert a.admit("job", running) is None
    with pytest.raises(TaskBusy, match="replica a"):
        b.acquire("job", new_run_id(), "manual")
    a.release("job", running.run_id)
    manual = new_run_id()
    b.acquire("job", manual, "manual")
    assert b.admit("job", RunRecord(manual, "job", "manual", None, SLOT)) is None  # already held: goes on


def test_a_dead_replicas_run_is_recorded_interrupted_when_its_lease_expires(replicas) -> None:
    (a, b, _), clock = replicas
    orphan = _run(SLOT)
    assert a.admit("job", orphan) is None  # ... and replica a dies: nobody renews its lease
    clock.advance(TTL / 2)
    verdict = b.admit("job", _run(SLOT + TTL / 2))
    assert verdict not in (None, UNCLAIMED) and verdict.outcome == "skipped"  # not expired yet
    clock.advance(TTL)
    assert b.admit("job", _run(SLOT + 1.5 * TTL)) is None  # expired: b records it and runs
    rows = {row["run_id"]: row for row in run_rows(a.database, "job", 10, None)}
    assert rows[orphan.run_id]["outcome"] == "interrupted"
    assert rows[orphan.run_id]["replica"] == "a" and "replica a" in rows[orphan.run_id]["error"]
    assert TaskStateStore(a.database).load()["job"].last_run_scheduled_for == SLOT  # its slot is the anchor


def test_event_requests_coalesce_onto_the_replica_running_the_task(replicas) -> None:
    (a, b, c), _ = replicas
    running = _run(SLOT)
    assert a.admit("job", running) is None
    for replica in (b, c):
        verdict = replica.admit("job", _run(None, "event"))
        assert verdict is UNCLAIMED
    a.release("job", running.run_id)
    assert a.take_rerun("job") is True  # one follow-up run for both requests
    assert a.take_rerun("job") is False
    assert not b.take_rerun("job") and not c.take_rerun("job")


def test_every_replica_names_the_same_slot_for_an_overdue_task() -> None:
    anchor = 1000.0
    assert grid_slot(anchor, 60, 1130.0) == 1120.0
    assert grid_slot(anchor, 60, 1179.9) == 1120.0
    assert grid_slot(anchor, 60, 1180.0) == 1180.0
    assert grid_slot(anchor, 60, 999.0) == 999.0  # a clock behind the anchor: now


@pytest.mark.slow
@pytest.mark.postgres  # starts its own server (it stops and restarts it), no fixture shows that
def test_database_outage_refuses_manual_runs_with_503_and_never_runs_unclaimed(live_app, make_settings) -> None:
    from devtools.postgres import PostgresCluster, postgres_available, start_postgres, stop_postgres
    from servicescheduler.scheduling.registry import TaskRegistry
    from servicescheduler.scheduling.triggers import every
    from tests.conftest import AUTH, wait_until

    if not postgres_available():
        pytest.skip("PostgreSQL not available")
    calls: list[float | None] = []
    registry = TaskRegistry()
    registry.register("job", lambda ctx: calls.append(ctx.scheduled_for), trigger=every(1).seconds)
    with PostgresCluster() as cluster:
        app = live_app(make_settings(database_url=cluster.url), registry)
        wait_until(lambda: calls)
        stop_postgres(cluster)
        try:
            ran = len(calls)
            response = app.client.post("/tasks/job/run", headers=AUTH)
            assert response.status_code == 503, response.text
            assert "unreachable" in response.json()["detail"]
            wait_until(lambda: app.scheduler.status("job").stats["missed"] >= 1, timeout=5)
            assert len(calls) <= ran + 1  # at most a run claimed just before the outage
        finally:
            start_postgres(cluster)
        wait_until(lambda: len(calls) > ran + 1, timeout=10)  # and it goes on once the database is back


def test_the_heartbeat_keeps_a_long_run_leased_and_reaps_a_dead_replicas_run(replicas) -> None:
    from servicescheduler.scheduling.cluster_sync import ClusterSync

    (a, b, _), clock = replicas
    sync_a, sync_b = (ClusterSync(c, lambda change: None, clock=clock) for c in (a, b))
    long_run = _run(SLOT)
    assert a.admit("job", long_run) is None
    for _ in range(3):  # the run lasts 2.4 TTLs, renewed by a's heartbeat
        clock.advance(0.8 * TTL)
        sync_a._beat()
        verdict = b.admit("job", _run(clock.now))
        assert verdict not in (None, UNCLAIMED) and verdict.outcome == "skipped", verdict
    clock.advance(1.5 * TTL)  # a died: no more heartbeats
    sync_b._beat()
    rows = {row["run_id"]: row for row in run_rows(a.database, "job", 10, None)}
    assert rows[long_run.run_id]["outcome"] == "interrupted" and rows[long_run.run_id]["replica"] == "a"


def test_get_cluster_and_metrics_show_this_replica_and_run_rows_name_it(live_app, make_settings) -> None:
    from servicescheduler.scheduling.registry import TaskRegistry
    from servicescheduler.scheduling.triggers import every
    from tests.conftest import wait_until

    registry = TaskRegistry()
    registry.register("job", lambda: None, trigger=every(1).hours)
    app = live_app(make_settings(), registry)
    view = app.client.get("/cluster").json()
    me = [replica for replica in view["replicas"] if replica["id"] == view["self"]]
    assert len(me) == 1 and me[0]["alive"] is True and me[0]["pid"] > 0 and me[0]["partitions"] == []
    runs: Any = wait_until(lambda: app.client.get("/tasks/job/runs").json())
    assert runs[0]["replica"] == view["self"]
    metrics = app.client.get("/metrics").text
    assert f'cluster_replica_alive{{replica="{view["self"]}"}} 1.0' in metrics


def test_get_cluster_is_404_when_clustering_is_off(live_app, make_settings) -> None:
    from servicescheduler.scheduling.registry import TaskRegistry

    app = live_app(make_settings(cluster_enabled=False), TaskRegistry())
    response = app.client.get("/cluster")
    assert response.status_code == 404 and "CLUSTER_ENABLED is false" in response.json()["detail"]


def test_replicas_starting_together_may_both_create_a_state_row(database_url, migrated) -> None:
    store = TaskStateStore(migrated(database_url))
    store.create({"consumer-kafka": (True, None)})
    store.create({"consumer-kafka": (False, None)})  # the second replica lost the race: no IntegrityError
    assert store.load()["consumer-kafka"].enabled is True


@pytest.mark.kafka
def test_a_consumer_toggle_on_one_replica_reaches_the_other(live_app, kafka_settings) -> None:
    from tests.conftest import AUTH, wait_until

    settings = kafka_settings()
    first, second = live_app(settings), live_app(settings)
    assert first.client.post("/consumer/disable", headers=AUTH).json()["enabled"] is False
    wait_until(lambda: second.client.get("/consumer").json()["enabled"] is False, timeout=1.0)  # within 1 s
    assert second.client.post("/consumer/enable", headers=AUTH).json()["enabled"] is True
    wait_until(lambda: first.client.get("/consumer").json()["enabled"] is True, timeout=1.0)
