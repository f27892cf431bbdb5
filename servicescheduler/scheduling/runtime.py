"""Tasks created at runtime: from a *declared function* plus JSON (a trigger, keyword arguments).

A host marks the functions operators may schedule at runtime::

    @scheduler.function("send-report")
    def send_report(ctx: TaskContext, *, region: str, recipients: list[str] | None = None) -> None: ...

and `POST /tasks {"name": "report-eu", "function": "send-report", "trigger": {"cron": "0 3 * * *",
"tz": "Europe/Berlin"}, "kwargs": {"region": "eu"}}` (or `scheduler.add_task(...)`) makes a task of
it. Only declared functions can be named: an operator chooses *when* and *with what arguments*,
never which code runs. Everything here is pure (no database): the scheduler persists the result.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError

from servicescheduler.scheduling.cron import zone_name
from servicescheduler.scheduling.errors import InvalidTask
from servicescheduler.scheduling.registry import TaskDefinitionError, TaskSpec, build_spec
from servicescheduler.scheduling.triggers import CronTrigger, ScheduleTrigger, Trigger, TriggerError, cron
from servicescheduler.settings import MAX_INTERVAL_SECONDS, MIN_INTERVAL_SECONDS
from servicescheduler.storage.runtime_tasks import RuntimeDefinition

TRIGGER_FORMS = '{"cron": "<5 or 6 fields>", "tz": "<IANA zone>"} or {"interval_seconds": <1 s to 7 days>}'


def trigger_from_json(data: Mapping[str, Any]) -> Trigger:
    """The trigger of `{"cron", "tz"}` or `{"interval_seconds"}`; raises InvalidTask saying why."""
    keys = set(data)
    if keys == {"interval_seconds"}:
        seconds = data["interval_seconds"]
        if isinstance(seconds, bool) or not isinstance(seconds, int):
            raise InvalidTask(f"trigger.interval_seconds must be a whole number of seconds, got {seconds!r}")
        if not MIN_INTERVAL_SECONDS <= seconds <= MAX_INTERVAL_SECONDS:
            raise InvalidTask(
                f"trigger.interval_seconds must be {MIN_INTERVAL_SECONDS} to {MAX_INTERVAL_SECONDS}, got {seconds}"
            )
        return Trigger.interval(seconds)
    if "cron" in keys and keys <= {"cron", "tz"}:
        expression, zone = data["cron"], data.get("tz")
        if not isinstance(expression, str) or not (zone is None or isinstance(zone, str)):
            raise InvalidTask("trigger.cron and trigger.tz must be strings")
        try:
            return cron(expression, tz=zone)
        except TriggerError as exc:
            raise InvalidTask(f"trigger: {exc}") from None
    raise InvalidTask(f"trigger must be {TRIGGER_FORMS}, got keys {sorted(keys)}")


def trigger_to_json(trigger: Trigger) -> dict[str, Any] | None:
    """The JSON form of a cron or plain interval trigger (the zone spelled out, so every replica
    reads the same one); None for what JSON cannot say (`.at(...)`, weekdays, jitter)."""
    if isinstance(trigger, CronTrigger):
        return {"cron": trigger.expression, "tz": zone_name(trigger.rule.zone)}
    if isinstance(trigger, ScheduleTrigger) and not trigger.is_calendar and trigger.job.latest is None:
        seconds = trigger.interval_seconds
        if seconds is not None and trigger.job.cancel_after is None:
            return {"interval_seconds": int(seconds)}
    return None


def check_kwargs(function: str, func: Callable[..., Any], kwargs: Mapping[str, Any]) -> None:
    """Raises InvalidTask unless `func(ctx, **kwargs)` fits the function's signature."""
    signature = inspect.signature(func)
    context = next(iter(signature.parameters))
    if context in kwargs:
        raise InvalidTask(f"kwargs: {context!r} is the TaskContext of {function}, not an argument")
    try:
        signature.bind(None, **kwargs)
    except TypeError as exc:
        raise InvalidTask(f"kwargs do not fit {function}{_shown(signature)}: {exc}") from None
    _check_types(function, func, kwargs)


def _check_types(function: str, func: Callable[..., Any], kwargs: Mapping[str, Any]) -> None:
    """Checks each argument against its parameter's annotation (pydantic, lax: 2 fits a float),
    so that `{"copies": "two"}` is refused now rather than failing every run. Annotations that
    cannot be resolved (names imported under TYPE_CHECKING) are not checked."""
    try:
        hints = typing.get_type_hints(func)
    except Exception:
        return
    for name, value in kwargs.items():
        if name not in hints:
            continue
        try:
            TypeAdapter(hints[name]).validate_python(value)
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"] if exc.errors() else str(exc)
            raise InvalidTask(f"kwargs: {name!r} of {function}: {reason}, got {value!r}") from None
        except Exception:  # a type pydantic cannot validate: the function's own business
            continue


def _shown(signature: inspect.Signature) -> str:
    return str(signature.replace(return_annotation=inspect.Signature.empty))


def build_runtime_spec(definition: RuntimeDefinition, functions: Mapping[str, Callable[..., Any]]) -> TaskSpec:
    """The TaskSpec of a runtime definition; raises InvalidTask naming what is wrong."""
    func = functions.get(definition.function)
    if func is None:
        known = ", ".join(sorted(functions)) or "none declared"
        raise InvalidTask(f"function {definition.function!r} is not a declared runtime function (functions: {known})")
    trigger = trigger_from_json(definition.trigger)
    check_kwargs(definition.function, func, definition.kwargs)
    bound = functools.partial(func, **definition.kwargs) if definition.kwargs else func
    try:
        return build_spec(
            definition.name,
            bound,
            trigger=trigger,
            description=definition.description,
            retries=definition.retries,
            retry_backoff=definition.retry_backoff,
            checkin_url=definition.checkin_url,
        )
    except TaskDefinitionError as exc:
        raise InvalidTask(str(exc)) from None
