"""Task routes: list, inspect, enable, disable, trigger, reschedule, history."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field

from api.admin_route import AdminFirstRoute
from api.deps import AdminDep, RuntimeDep
from api.responses import error_responses
from api.views import RunView, TaskView
from redact import scrub_errors
from runlog import run_rows
from scheduler import TaskBusy, UnknownTask
from triggers import MAX_INTERVAL_SECONDS, MIN_INTERVAL_SECONDS

router = APIRouter(prefix="/tasks", tags=["tasks"], route_class=AdminFirstRoute,
                   responses=error_responses(422, 500, 503))

Outcome = Literal["success", "error", "timeout", "skipped", "missed"]


class TaskPatch(BaseModel):
    """Fields an operator may change at runtime."""

    model_config = ConfigDict(extra="forbid")
    interval_seconds: int = Field(ge=MIN_INTERVAL_SECONDS, le=MAX_INTERVAL_SECONDS,
                                  description="New interval, 1 s to 7 days")


class RunAccepted(BaseModel):
    """Answer to a manual trigger."""

    run_id: str


def _known(runtime, name: str) -> None:
    if name not in runtime.scheduler.names():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown task {name!r}")


@router.get("", response_model=list[TaskView])
def list_tasks(runtime: RuntimeDep) -> list[dict]:
    """Every task with its schedule, next run, last run and counters."""
    return scrub_errors(runtime.scheduler.statuses())


@router.get("/{name}", response_model=TaskView, responses=error_responses(404))
def get_task(name: str, runtime: RuntimeDep) -> dict:
    """One task."""
    _known(runtime, name)
    return scrub_errors(runtime.scheduler.status(name))


@router.post("/{name}/enable", response_model=TaskView, responses=error_responses(401, 404))
def enable_task(name: str, runtime: RuntimeDep, actor: AdminDep) -> dict:
    """Enables a task (persisted); idempotent."""
    _known(runtime, name)
    return runtime.scheduler.set_enabled(name, True, actor=actor)


@router.post("/{name}/disable", response_model=TaskView, responses=error_responses(401, 404))
def disable_task(name: str, runtime: RuntimeDep, actor: AdminDep) -> dict:
    """Disables a task (persisted): no further scheduled runs; idempotent."""
    _known(runtime, name)
    return runtime.scheduler.set_enabled(name, False, actor=actor)


@router.post("/{name}/run", status_code=status.HTTP_202_ACCEPTED, responses=error_responses(401, 404, 409))
def run_task(name: str, runtime: RuntimeDep, actor: AdminDep) -> RunAccepted:
    """Starts a run now (even when disabled); 409 while a run is in progress."""
    _known(runtime, name)
    try:
        run_id = runtime.scheduler.trigger(name, actor=actor)
    except TaskBusy as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return RunAccepted(run_id=run_id)


@router.patch("/{name}", response_model=TaskView, responses=error_responses(400, 401, 404, 413))
def patch_task(name: str, body: TaskPatch, runtime: RuntimeDep, actor: AdminDep) -> dict:
    """Changes the interval (persisted, effective at once)."""
    _known(runtime, name)
    try:
        return runtime.scheduler.reschedule(name, body.interval_seconds, actor=actor)
    except UnknownTask:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown task {name!r}") from None


@router.get("/{name}/runs", response_model=list[RunView], responses=error_responses(404))
def task_runs(name: str, runtime: RuntimeDep,
              limit: Annotated[int, Query(ge=1, le=500)] = 50,
              outcome: Outcome | None = None) -> list[dict]:
    """Run history, newest first."""
    _known(runtime, name)
    return scrub_errors(run_rows(runtime.database, name, limit, outcome))
