"""Task routes: list, inspect, create, delete, enable, disable, trigger, reschedule, history.

Unknown task names (UnknownTask → 404) and busy tasks (TaskBusy → 409) are mapped once, for every
bound route (api/binding.py), from the scheduler's own errors.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from servicescheduler import tracing
from servicescheduler.api.deps import AdminDep, AppDep
from servicescheduler.api.responses import error_responses
from servicescheduler.api.views import RunView, TaskView
from servicescheduler.scheduling.errors import UnknownTask
from servicescheduler.scheduling.registry import DEFAULT_RETRY_BACKOFF_SECONDS, NAME_PATTERN
from servicescheduler.settings import MAX_INTERVAL_SECONDS, MIN_INTERVAL_SECONDS
from servicescheduler.storage.history import has_runs, run_rows
from servicescheduler.support.redact import scrub_errors
from servicescheduler.vocabulary import RunOutcome

router = APIRouter(prefix="/tasks", tags=["tasks"], responses=error_responses(422, 500, 503))


class IntervalTrigger(BaseModel):
    """Every N seconds, on the task's grid."""

    model_config = ConfigDict(extra="forbid")
    # Strict: `true` or "60" would otherwise be coerced to an interval the schema does not allow.
    interval_seconds: int = Field(
        ge=MIN_INTERVAL_SECONDS, le=MAX_INTERVAL_SECONDS, strict=True, description="Interval, 1 s to 7 days"
    )


class CronLine(BaseModel):
    """A cron line (5 fields, or 6 with seconds first) in an IANA zone."""

    model_config = ConfigDict(extra="forbid")
    cron: str = Field(min_length=1, max_length=200, description='e.g. "0 3 * * *"')
    tz: str | None = Field(
        default=None, max_length=64, description="IANA zone, e.g. Europe/Berlin (default: the server's)"
    )


TriggerBody = IntervalTrigger | CronLine


class TaskPatch(BaseModel):
    """Fields an operator may change at application: the interval, or the whole trigger."""

    model_config = ConfigDict(extra="forbid")
    interval_seconds: int | None = Field(
        default=None,
        ge=MIN_INTERVAL_SECONDS,
        le=MAX_INTERVAL_SECONDS,
        strict=True,
        description="New interval, 1 s to 7 days",
    )
    trigger: TriggerBody | None = Field(
        default=None, description="New trigger: an interval or a cron line; null: back to the configured one"
    )

    @model_validator(mode="after")
    def _one_change(self) -> TaskPatch:
        if self.resets():
            if self.interval_seconds is not None:
                raise ValueError('"trigger": null resets the trigger; give no interval_seconds with it')
        elif (self.interval_seconds is None) == (self.trigger is None):
            raise ValueError("give either interval_seconds or trigger")
        return self

    def resets(self) -> bool:
        """`{"trigger": null}`: drop the operator's trigger (an absent trigger is not a reset)."""
        return "trigger" in self.model_fields_set and self.trigger is None

    def trigger_json(self) -> dict[str, Any]:
        """The change as the scheduler's JSON trigger."""
        if self.trigger is not None:
            return self.trigger.model_dump(exclude_none=True)
        return {"interval_seconds": self.interval_seconds}


class TaskCreate(BaseModel):
    """A task made at runtime from a declared function (`@scheduler.function(...)`)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME_PATTERN.pattern, description="Lower case, digits, - and _; at most 64")
    function: str = Field(min_length=1, max_length=80, description="A declared runtime function's name")
    trigger: TriggerBody
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments besides ctx")
    enabled: bool = Field(default=True, strict=True)
    description: str = Field(default="", max_length=500)
    retries: int = Field(default=0, ge=0, le=100, strict=True, description="Attempts after a failed one")
    retry_backoff: float = Field(
        default=DEFAULT_RETRY_BACKOFF_SECONDS, gt=0, le=86_400, description="Seconds; the first retry waits 0.5-1x this"
    )
    # Checked as a declaration's (http:// or https://) by the scheduler; never shown back: its path is a secret.
    checkin_url: str | None = Field(
        default=None, min_length=1, max_length=2048, description="http(s) URL to GET after each successful run"
    )


class RunAccepted(BaseModel):
    """Answer to a manual trigger."""

    run_id: str


@router.get("", response_model=list[TaskView])
def list_tasks(application: AppDep) -> list[dict[str, Any]]:
    """Every task with its schedule, next run, last run and counters."""
    return [scrub_errors(status.as_dict()) for status in application.scheduler.statuses()]


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=TaskView, responses=error_responses(400, 401, 409, 413)
)
def create_task(body: TaskCreate, application: AppDep, actor: AdminDep) -> dict[str, Any]:
    """Creates a task from a declared function (persisted, audited, on every replica within 1 s);
    409 when the name is taken, 422 naming what does not fit (function, trigger, kwargs)."""
    status_ = application.scheduler.add_task(
        body.name,
        body.function,
        body.trigger.model_dump(exclude_none=True),
        kwargs=body.kwargs,
        enabled=body.enabled,
        description=body.description,
        retries=body.retries,
        retry_backoff=body.retry_backoff,
        checkin_url=body.checkin_url,
        actor=actor,
    )
    return scrub_errors(status_.as_dict())


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(401, 404, 409))
def delete_task(name: str, application: AppDep, actor: AdminDep) -> Response:
    """Deletes a runtime task (its run history stays); 409 for a task declared in code."""
    application.scheduler.remove_task(name, actor=actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


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
    """Changes the interval or the trigger (persisted, effective at once); `{"trigger": null}`
    puts the task back on its configured trigger."""
    if body.resets():
        return application.scheduler.reset_trigger(name, actor=actor).as_dict()
    return application.scheduler.retrigger(name, body.trigger_json(), actor=actor).as_dict()


@router.get("/{name}/runs", response_model=list[RunView], responses=error_responses(404))
def task_runs(
    name: str,
    application: AppDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    outcome: RunOutcome | None = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[dict[str, Any]]:
    """Run history, newest first; `offset` skips that many (paging). A name no task has now but
    with stored runs (a deleted runtime task, a task taken out of the code) answers its history;
    404 only for a name without task and without runs."""
    try:
        application.scheduler.require(name)
    except UnknownTask:
        if not has_runs(application.database, name):
            raise
    return scrub_errors(run_rows(application.database, name, limit, outcome, offset))
