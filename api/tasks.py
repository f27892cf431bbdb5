"""Task routes: list, inspect, enable, disable, trigger, reschedule, history.

Unknown task names (UnknownTask → 404) and busy tasks (TaskBusy → 409) are mapped once, in
server.py, from the scheduler's own errors.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import AdminDep, AppDep
from settings import MAX_INTERVAL_SECONDS, MIN_INTERVAL_SECONDS
from storage.history import run_rows

router = APIRouter(prefix="/tasks", tags=["tasks"])

Outcome = Literal["success", "error", "timeout", "skipped", "missed", "interrupted"]
TaskView = dict[str, Any]


class TaskPatch(BaseModel):
    """Fields an operator may change at runtime."""

    model_config = ConfigDict(extra="forbid")
    interval_seconds: int = Field(ge=MIN_INTERVAL_SECONDS, le=MAX_INTERVAL_SECONDS,
                                  description="New interval, 1 s to 7 days")


class RunAccepted(BaseModel):
    """Answer to a manual trigger."""

    run_id: str


@router.get("")
def list_tasks(application: AppDep) -> list[TaskView]:
    """Every task with its schedule, next run, last run and counters."""
    return application.scheduler.statuses()


@router.get("/{name}")
def get_task(name: str, application: AppDep) -> TaskView:
    """One task."""
    return application.scheduler.status(name)


@router.post("/{name}/enable")
def enable_task(name: str, application: AppDep, actor: AdminDep) -> TaskView:
    """Enables a task (persisted); idempotent."""
    return application.scheduler.set_enabled(name, True, actor=actor)


@router.post("/{name}/disable")
def disable_task(name: str, application: AppDep, actor: AdminDep) -> TaskView:
    """Disables a task (persisted): no further scheduled runs; idempotent."""
    return application.scheduler.set_enabled(name, False, actor=actor)


@router.post("/{name}/run", status_code=status.HTTP_202_ACCEPTED)
def run_task(name: str, application: AppDep, actor: AdminDep) -> RunAccepted:
    """Starts a run now (even when disabled); 409 while a run is in progress."""
    return RunAccepted(run_id=application.scheduler.trigger(name, actor=actor))


@router.patch("/{name}")
def patch_task(name: str, body: TaskPatch, application: AppDep, actor: AdminDep) -> TaskView:
    """Changes the interval (persisted, effective at once)."""
    return application.scheduler.reschedule(name, body.interval_seconds, actor=actor)


@router.get("/{name}/runs")
def task_runs(name: str, application: AppDep,
              limit: Annotated[int, Query(ge=1, le=500)] = 50,
              outcome: Outcome | None = None) -> list[dict[str, Any]]:
    """Run history, newest first."""
    application.scheduler.require(name)
    return run_rows(application.database, name, limit, outcome)
