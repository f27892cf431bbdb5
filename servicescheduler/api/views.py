"""Response models of the task and audit routes: they publish the answers' shape in the OpenAPI
schema (checked by the schemathesis fuzzing). Types are kept as wide as the values the
scheduler produces, and unknown fields pass through, so a new field never breaks an answer."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from servicescheduler.vocabulary import RunOutcome

Number = int | float


class View(BaseModel):
    """Base: extra fields are kept (and published as additional properties)."""

    model_config = ConfigDict(extra="allow")


class RunView(View):
    """One run of a task."""

    run_id: str
    trigger: str = Field(description="schedule, startup, catch-up, manual, event, retry")
    scheduled_for: str | None = Field(description="ISO 8601 UTC; null for unscheduled runs")
    started_at: str | None
    finished_at: str | None
    duration_ms: Number | None
    outcome: RunOutcome | None = Field(description="How it ended; `running` while in progress")
    error: str | None = Field(description="Why it failed (no SQL parameters or secrets, at most 500 characters)")
    replica: str | None = Field(default=None, description="cluster: the replica that ran (or recorded) it")
    attempt: int = Field(default=1, description="1 for a run itself, 2.. for its retries (trigger `retry`)")


class CurrentRun(View):
    """The run in progress."""

    run_id: str
    trigger: str
    started_at: str | None
    overrunning: bool


class PendingRetryView(View):
    """The next attempt of a failed run, waiting for its due time."""

    attempt: int = Field(description="2 for the first retry")
    due: str | None = Field(description="ISO 8601 UTC")


class TaskView(View):
    """A task as the API shows it."""

    name: str
    description: str | None
    enabled: bool
    schedule: str = Field(description="e.g. 'every 30 seconds'")
    interval_seconds: Number | None = Field(description="null for calendar triggers")
    at: str | None = Field(description="time of day of calendar triggers")
    interval_overridden: bool
    executor: str
    timeout_seconds: Number | None
    next_run_at: str | None
    running: bool
    current_run: CurrentRun | None
    last_run: RunView | None
    last_success_at: str | None
    stale: bool
    stats: dict[str, int] = Field(description="runs, successes, failures, timeouts, skipped, missed, ...")
    run_requests_dropped: int = Field(default=0, description="event-triggered run requests dropped while disabled")
    retries: int = Field(default=0, description="declared: how many more attempts a failed run gets")
    pending_retry: PendingRetryView | None = Field(default=None, description="the next attempt of a failed run")
    trigger: dict[str, Any] | None = Field(
        default=None, description='{"cron", "tz"} or {"interval_seconds"}; null for other declared triggers'
    )
    origin: str = Field(default="code", description="code (declared) or runtime (created through the API)")
    function: str | None = Field(default=None, description="runtime tasks: the declared function")
    kwargs: dict[str, Any] | None = Field(default=None, description="runtime tasks: its keyword arguments")


class AuditView(View):
    """A change made through the API."""

    at: str
    actor: str
    action: str
    target: str
    detail: dict[str, Any] | None
