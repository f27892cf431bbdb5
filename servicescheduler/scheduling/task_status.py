"""TaskStatus: the read model of one task, as the scheduler hands it to the API, the dashboard and
tests. Frozen: a snapshot taken under the scheduler's lock, safe to read on any thread after.

`as_dict()` is the JSON the API publishes (api/views.py TaskView), field for field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from servicescheduler.scheduling.retries import PendingRetry
from servicescheduler.storage.records import RunRecord
from servicescheduler.support.clock import iso


@dataclass(frozen=True)
class CurrentRun:
    """The run in progress."""

    run_id: str
    cause: str  # published as `trigger`
    started_at: str | None
    overrunning: bool

    def as_dict(self) -> dict[str, Any]:
        """The API's `current_run`."""
        return {
            "run_id": self.run_id,
            "trigger": self.cause,
            "started_at": self.started_at,
            "overrunning": self.overrunning,
        }


@dataclass(frozen=True)
class TaskStatus:
    """One task: its schedule, state, last run and counters."""

    name: str
    description: str | None
    enabled: bool
    schedule: str  # e.g. "every 30 seconds"
    interval_seconds: float | None  # None for calendar triggers
    at: str | None  # time of day of calendar triggers
    interval_overridden: bool
    executor: str
    timeout_seconds: float | None
    next_run_at: str | None
    running: bool
    current_run: CurrentRun | None
    last_run: RunRecord | None  # ended: RunBook no longer changes it
    last_success_at: str | None
    stale: bool
    stats: dict[str, int]  # runs, successes, failures, timeouts, skipped, missed, interrupted
    run_requests_dropped: int
    retries: int  # declared: attempts after a failed one
    pending_retry: PendingRetry | None  # the next attempt of a failed run, if one waits
    trigger: dict[str, Any] | None = None  # JSON form of a cron or plain interval trigger
    origin: str = "code"  # "code" (declared) or "runtime" (POST /tasks, add_task)
    function: str | None = None  # runtime tasks: the declared function and its arguments
    kwargs: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON the API publishes for this task."""
        return {
            "name": self.name,
            "description": self.description,
            "enabled": self.enabled,
            "schedule": self.schedule,
            "interval_seconds": self.interval_seconds,
            "at": self.at,
            "interval_overridden": self.interval_overridden,
            "executor": self.executor,
            "timeout_seconds": self.timeout_seconds,
            "next_run_at": self.next_run_at,
            "running": self.running,
            "current_run": self.current_run.as_dict() if self.current_run is not None else None,
            "last_run": self.last_run.as_dict() if self.last_run is not None else None,
            "last_success_at": self.last_success_at,
            "stale": self.stale,
            "stats": dict(self.stats),
            "run_requests_dropped": self.run_requests_dropped,
            "retries": self.retries,
            "pending_retry": self.pending_retry.as_dict() if self.pending_retry is not None else None,
            "trigger": self.trigger,
            "origin": self.origin,
            "function": self.function,
            "kwargs": self.kwargs,
        }


def current_run(run: RunRecord, overrunning: bool) -> CurrentRun:
    """The CurrentRun view of a run in progress."""
    return CurrentRun(run.run_id, run.cause, iso(run.started_at), overrunning)
