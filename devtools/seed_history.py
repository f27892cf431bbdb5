"""Writes a made-up but plausible run history, as a service that ran for a while would have it.

Used by the dashboard tests (a screenshot with realistic data) and by its render benchmark
(10,000 runs). Rows go in through the models, exactly as the RunRecorder writes them, with a
task_state row per task so a start-up restores the counters and keeps the grid (no catch-up run).
`insert_expired` writes an already expired backlog instead, for the retention tests and benchmark 11.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from sqlalchemy import insert

from servicescheduler.storage.db import Database
from servicescheduler.storage.models import Event, TaskRun, TaskState
from servicescheduler.support.clock import utcnow

# Mostly successes, some failures, a few timeouts and skips.
OUTCOMES = ("success", "error", "timeout", "skipped", "missed")
WEIGHTS = (88.0, 7.0, 2.0, 2.0, 1.0)
ERRORS = {
    "error": "HTTPStatusError: Server error '503 Service Unavailable' for url 'http://127.0.0.1:9/hook'",
    "timeout": "TimeoutError: run exceeded its timeout of 60 s",
    "skipped": "previous run still running",
    "missed": "started 41.200 s late",
}


def seed_history(
    database: Database,
    periods: dict[str, int],
    runs_per_task: int,
    *,
    typical_ms: dict[str, float] | None = None,
    seed: int = 7,
) -> None:
    """For each task `name: period_seconds`, `runs_per_task` runs on its grid ending now."""
    rng = random.Random(seed)
    now = utcnow()
    with database.session() as session:
        for name, period in periods.items():
            mean = (typical_ms or {}).get(name, 40.0)
            last_due = now - timedelta(seconds=period / 3)
            session.merge(
                TaskState(
                    name=name,
                    enabled=True,
                    interval_seconds=None,
                    updated_at=now,
                    last_run_scheduled_for=last_due,
                    last_success_at=last_due,
                )
            )
            session.add_all(_runs(rng, name, period, mean, runs_per_task, last_due))


def _runs(rng: random.Random, name: str, period: int, mean_ms: float, count: int, last_due: datetime) -> list[TaskRun]:
    rows = []
    for index in range(count):
        due = last_due - timedelta(seconds=period * (count - 1 - index))
        outcome = rng.choices(OUTCOMES, WEIGHTS)[0]
        ms = 0.0 if outcome in ("skipped", "missed") else max(0.5, rng.lognormvariate(0, 0.35) * mean_ms)
        started = due + timedelta(milliseconds=rng.uniform(0.02, 0.4))
        rows.append(
            TaskRun(
                run_id=f"seed-{name[:20]}-{index:08d}",
                task=name,
                trigger="schedule",
                scheduled_for=due,
                started_at=started,
                finished_at=started + timedelta(milliseconds=ms),
                duration_ms=round(ms, 3),
                outcome=outcome,
                error=ERRORS.get(outcome),
            )
        )
    return rows


def insert_expired(database: Database, *, events: int, runs: int, age: timedelta = timedelta(days=60)) -> None:
    """`events` events and `runs` runs, all finished `age` ago (expired under the default retention),
    inserted in bulk (10,000 rows per statement): the backlog a cleanup pass has to delete."""
    stamp = utcnow() - age
    with database.session() as session:
        for start in range(0, events, 10_000):
            session.execute(
                insert(Event),
                [
                    dict(
                        id=f"ev-{index}",
                        type="order.created",
                        occurred_at=stamp,
                        received_at=stamp,
                        data={"n": index},
                        topic="events",
                        partition=0,
                        offset=index,
                    )
                    for index in range(start, min(events, start + 10_000))
                ],
            )
        for start in range(0, runs, 10_000):
            session.execute(
                insert(TaskRun),
                [
                    dict(
                        run_id=f"run-{index}",
                        task="t",
                        trigger="schedule",
                        started_at=stamp,
                        finished_at=stamp,
                        duration_ms=1.0,
                        outcome="success",
                    )
                    for index in range(start, min(runs, start + 10_000))
                ],
            )
