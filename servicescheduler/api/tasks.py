"""Task routes: list, inspect, enable, disable, trigger, reschedule, history.

Unknown task names (UnknownTask → 404) and busy tasks (TaskBusy → 409) are mapped once, for every
bound route (api/binding.py), from the scheduler's own errors.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from servicescheduler import tracing
from servicescheduler.api.deps import AdminDep, AppDep
from servicescheduler.api.responses import error_responses
from servicescheduler.api.views import RunView, TaskView
from servicescheduler.settings import MAX_INTERVAL_SECONDS, MIN_INTERVAL_SECONDS
from servicescheduler.storage.history import run_rows
from servicescheduler.support.redact import scrub_errors
from servicescheduler.vocabulary import RunOutcome

router = APIRouter(prefix="/tasks", tags=["tasks"], responses=error_responses(422, 500, 503))


class TaskPatch(BaseModel):
    """Fields an operator may change at application."""

    model_config = ConfigDict(extra="forbid")
    # Strict: `true` or "60" would otherwise be coerced to an interval the schema does not allow.
    interval_seconds: int = Field(
        ge=MIN_INTERVAL_SECONDS, le=MAX_INTERVAL_SECONDS, strict=True, description="New interval, 1 s to 7 days"
    )


class RunAccepted(BaseModel):
    """Answer to a manual trigger."""

    run_id: str


@router.get("", response_model=list[TaskView])
def list_tasks(application: AppDep) -> list[dict[str, Any]]:
    """Every task with its schedule, next run, last run and counters."""
    return [scrub_errors(status.as_dict()) for status in application.scheduler.statuses()]


@router.get("/{name}", response_model=TaskView, responses=error_responses(404))
def get_task(name: str, application: AppDep) -> dict[str, Any]:
    """One task."""
    return scrub_errors(application.scheduler.status(name).as_dict())


@router.post("/{name}/enable", response_model=TaskView, responses=error_responses(401, 404))
def enable_task(name: str, application: AppDep, actor: AdminDep) -> dict[str, Any]:
    """Enables a task (persisted); idempotent."""
    return application.scheduler.set_enabled(name, True, actor=actor).as_dict()


@router.post("/{name}/disable", response_model=TaskView, responses=error_responses(401, 404))
def disable_task(name: str, application: AppDep, actor: AdminDep) -> dict[str, Any]:
    """Disables a task (persisted): no further scheduled runs; idempotent."""
    return application.scheduler.set_enabled(name, False, actor=actor).as_dict()


@router.post("/{name}/run", status_code=status.HTTP_202_ACCEPTED, responses=error_responses(401, 404, 409))
def run_task(name: str, request: Request, application: AppDep, actor: AdminDep) -> RunAccepted:
    """Starts a run now (even when disabled); 409 while a run is in progress."""
    # The run's span links to this request's: its span (FastAPI instrumentation) or its traceparent.
    link = tracing.request_traceparent(request.headers) if tracing.enabled() else None
    return RunAccepted(run_id=application.scheduler.trigger(name, actor=actor, trace_link=link))


@router.patch("/{name}", response_model=TaskView, responses=error_responses(400, 401, 404, 413))
def patch_task(name: str, body: TaskPatch, application: AppDep, actor: AdminDep) -> dict[str, Any]:
    """Changes the interval (persisted, effective at once)."""
    return application.scheduler.reschedule(name, body.interval_seconds, actor=actor).as_dict()


@router.get("/{name}/runs", response_model=list[RunView], responses=error_responses(404))
def task_runs(
    name: str,
    application: AppDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    outcome: RunOutcome | None = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[dict[str, Any]]:
    """Run history, newest first; `offset` skips that many (paging)."""
    application.scheduler.require(name)
    return scrub_errors(run_rows(application.database, name, limit, outcome, offset))
