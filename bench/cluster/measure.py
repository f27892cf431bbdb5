"""Benchmark 12: several replicas on one database (`python -m bench --only 12`, or
`python -m bench.cluster` to print the section alone).

- claim cost: Coordinator.admit + release per run (slot claim + lease + release), SQLite and
  PostgreSQL, next to a `SELECT 1` transaction on the same engine (the floor of any round trip);
- start lateness of a 1 s task with 1 and with 3 replicas on PostgreSQL (real server processes,
  GC_FREEZE_ON_START=true as the container ships it), next to 1 and 3 processes with
  CLUSTER_ENABLED=false, measured in the same run;
- full collection of a started service, with and without GC_FREEZE_ON_START (gc_pause.py);
- toggle propagation: disable/enable sent to one replica until the two others show it (HTTP poll
  every 2 ms);
- claim curve: claim attempts/s and latency with 1, 3, 10 and 30 coordinators racing for every
  slot on one PostgreSQL (bench/cluster/claim_curve.py);
- failover: kill -9 of the replica running `slow` (3 s body every 4 s) → its run recorded
  `interrupted`, and the next run of `slow` on another replica; the 1 s task's largest gap.
"""

from __future__ import annotations

import tempfile
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from bench.common import ensure_path
from bench.stats import summarize

ensure_path()

TTL_SECONDS = 5.0


def _postgres_url() -> AbstractContextManager[str]:
    """A fresh database on the bench's PostgreSQL server (bench/postgres.py), as a context."""
    from bench.postgres import fresh_database

    return fresh_database("bench_cluster")


def claim_cost(database_url: str, runs: int) -> dict[str, Any]:
    """µs per admit (claim + lease) and per release, and per `SELECT 1` transaction."""
    from sqlalchemy import text

    from bench.common import open_database
    from servicescheduler.scheduling.coordination import DatabaseCoordinator
    from servicescheduler.scheduling.launcher import new_run_id
    from servicescheduler.storage.records import RunRecord

    tmp = Path(tempfile.mkdtemp(prefix="bench-claim-"))
    from bench.common import bench_settings

    database = open_database(bench_settings(tmp, database_url=database_url))
    coordinator = DatabaseCoordinator(database, ttl_seconds=15, clock=time.time)
    admit, release, floor = [], [], []
    base = float(int(time.time()))
    for index in range(runs):
        run = RunRecord(new_run_id(), "job", "schedule", base + index, time.time())
        t0 = time.perf_counter()
        refused = coordinator.admit("job", run)
        t1 = time.perf_counter()
        coordinator.release("job", run.run_id)
        t2 = time.perf_counter()
        with database.session() as session:
            session.execute(text("SELECT 1"))
        floor.append(time.perf_counter() - t2)
        assert refused is None, refused
        admit.append(t1 - t0)
        release.append(t2 - t1)
    database.dispose()
    return {
        "admit_us": summarize(admit, 1e6, 1),
        "release_us": summarize(release, 1e6, 1),
        "select1_us": summarize(floor, 1e6, 1),
    }


def _start(tmp: Path, url: str, count: int, **env: str) -> list[Any]:
    from devtools.replicas import ServerProcess, wait_ready, write_task_module

    module = write_task_module(tmp)
    base = {
        "DATABASE_URL": url,
        "TASK_MODULES": module,
        "CLUSTER_REPLICA_TTL_SECONDS": str(TTL_SECONDS),
        "LOG_LEVEL": "WARNING",
        "GC_FREEZE_ON_START": "true",  # as the container ships it (Dockerfile); see gc_pause.py
        **env,
    }
    servers = [ServerProcess(tmp, f"replica-{index}", base) for index in range(count)]
    wait_ready(servers)
    return servers


def _lateness(server: Any, since: float) -> dict[str, Any]:
    from devtools.replicas import epoch

    runs = [run for run in server.get("/tasks/tick/runs", limit=500) if run["outcome"] == "success"]
    late = [
        epoch(run["started_at"]) - epoch(run["scheduled_for"])
        for run in runs
        if run["scheduled_for"] and epoch(run["scheduled_for"]) >= since
    ]
    slots = [run["scheduled_for"] for run in runs if run["scheduled_for"] and epoch(run["scheduled_for"]) >= since]
    return {"lateness_ms": summarize(late, 1000), "runs": len(slots), "duplicates": len(slots) - len(set(slots))}


def lateness(count: int, seconds: float, **env: str) -> dict[str, Any]:
    """Start lateness of the 1 s task with `count` replicas on a fresh PostgreSQL database."""
    with _postgres_url() as url:
        servers = _start(Path(tempfile.mkdtemp(prefix="bench-cluster-")), url, count, **env)
        try:
            since = time.time() + 2  # skip the start-up runs
            time.sleep(seconds + 2)
            return _lateness(servers[0], since)
        finally:
            for server in servers:
                server.stop()


def _propagation(servers: list[Any], toggles: int) -> list[float]:
    samples = []
    for index in range(toggles):
        sender, others = servers[index % 3], [s for s in servers if s is not servers[index % 3]]
        enabled = index % 2 == 1
        sender.post(f"/tasks/tick/{'enable' if enabled else 'disable'}").raise_for_status()
        sent = time.perf_counter()
        pending = list(others)
        while pending and time.perf_counter() - sent < 5:
            pending = [s for s in pending if s.get("/tasks/tick")["enabled"] is not enabled]
            time.sleep(0.002)
        assert not pending, "a toggle did not propagate within 5 s"
        samples.append(time.perf_counter() - sent)
    if toggles % 2 == 1:
        servers[0].post("/tasks/tick/enable").raise_for_status()
    return samples


def _holder(server: Any, task: str) -> str | None:
    """The live replica whose run of `task` is in progress, by GET /cluster."""
    for replica in server.get("/cluster")["replicas"]:
        if replica["alive"] and task in replica["running"]:
            return str(replica["id"])
    return None


def _failover(servers: list[Any]) -> dict[str, Any]:
    from devtools.replicas import epoch

    deadline = time.monotonic() + 15
    while (victim_id := _holder(servers[0], "slow")) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    victim = next(s for s in servers if s.get("/cluster")["self"] == victim_id)
    survivor = next(s for s in servers if s is not victim)
    victim.kill()
    killed = time.time()
    interrupted_after = next_run_after = None
    while time.time() - killed < TTL_SECONDS + 15 and (next_run_after is None or interrupted_after is None):
        runs = survivor.get("/tasks/slow/runs", limit=50)
        if interrupted_after is None and any(run["outcome"] == "interrupted" for run in runs):
            interrupted_after = time.time() - killed
        started = [
            epoch(r["started_at"])
            for r in runs
            if r["replica"] != victim_id and r["outcome"] == "success" and epoch(r["started_at"]) > killed
        ]
        if started and next_run_after is None:
            next_run_after = min(started) - killed
        time.sleep(0.05)
    tick = sorted(
        epoch(r["scheduled_for"])
        for r in survivor.get("/tasks/tick/runs", limit=200)
        if r["scheduled_for"] and epoch(r["scheduled_for"]) > killed - 3
    )
    gaps = [b - a for a, b in zip(tick, tick[1:], strict=False)]
    servers.remove(victim)
    return {
        "interrupted_recorded_s": interrupted_after,
        "next_slow_run_s": next_run_after,
        "tick_max_gap_s": max(gaps) if gaps else None,
        "ttl_s": TTL_SECONDS,
    }


def cluster_scenario(seconds: float, toggles: int) -> dict[str, Any]:
    """3 replicas on PostgreSQL: lateness, toggle propagation, failover."""
    with _postgres_url() as url:
        servers = _start(Path(tempfile.mkdtemp(prefix="bench-cluster-")), url, 3)
        try:
            since = time.time() + 2
            time.sleep(seconds + 2)
            result = _lateness(servers[0], since)
            result["toggle_propagation_ms"] = summarize(_propagation(servers, toggles), 1000)
            result["failover"] = _failover(servers)
            return result
        finally:
            for server in servers:
                server.stop()


def measure(quick: bool) -> dict[str, Any]:
    """All cluster measurements (quick: fewer samples)."""
    seconds, toggles, runs = (15, 10, 200) if quick else (40, 30, 1000)
    data: dict[str, Any] = {"seconds": seconds}
    tmp = Path(tempfile.mkdtemp(prefix="bench-claim-db-"))
    data["claim_sqlite"] = claim_cost(f"sqlite:///{tmp / 'claims.db'}", runs)
    with _postgres_url() as url:
        data["claim_postgresql"] = claim_cost(url, runs)
    data["alone_unclustered"] = lateness(1, seconds, CLUSTER_ENABLED="false")
    data["one_replica"] = lateness(1, seconds)
    from bench.cluster import gc_pause

    data["gc_pause"] = gc_pause.measure()
    # Three uncoordinated processes (each runs every slot): the same CPU contention as three
    # replicas, without the coordination; the baseline of the 3-replica lateness.
    data["three_unclustered"] = lateness(3, seconds, CLUSTER_ENABLED="false")
    data["three_replicas"] = cluster_scenario(seconds, toggles)
    from bench.cluster import claim_curve

    data["claim_curve"] = claim_curve.measure(quick)
    return data
