"""Task declarations: adding a task is one decorator in one module (services/ or TASK_MODULES).

    from servicescheduler.scheduling import TaskContext, every, tasks

    @tasks.task("nightly-export", trigger=every().day.at("02:30"), timeout=600,
                description="Exports yesterday's orders")
    def nightly_export(ctx: TaskContext) -> None:
        with ctx.database.session() as session:
            ...

Invalid declarations raise TaskDefinitionError at import time, naming the task.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import schedule

from servicescheduler.scheduling.triggers import Trigger, TriggerError

if TYPE_CHECKING:
    from servicescheduler.settings import Settings
    from servicescheduler.storage.db import Database

# The first retry waits 5-10 s unless the declaration says otherwise (scheduling/retries.py).
DEFAULT_RETRY_BACKOFF_SECONDS = 10.0
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
Executor = Literal["thread", "process"]


class TaskDefinitionError(ValueError):
    """A task declaration is invalid; the message starts with the task's name."""


@dataclass(frozen=True)
class TaskContext:
    """What a thread-executor task receives (if its function takes one argument).

    Async tasks: create event-loop-bound resources (httpx.AsyncClient, async engines) inside
    the run; each run has its own event loop, closed when the run ends.
    """

    task: str
    run_id: str
    trigger: str
    scheduled_for: float | None
    settings: Settings
    database: Database
    extras: dict[str, Any] = field(default_factory=dict)
    attempt: int = 1  # 2.. when this run is a retry of a failed one


@dataclass(frozen=True)
class TaskSpec:
    """One declared task: what to run, when, and how."""

    name: str
    func: Callable[..., Any]
    trigger: Trigger
    description: str = ""
    timeout_seconds: float | None = None
    enabled: bool = True
    run_at_start: bool = False
    executor: Executor = "thread"
    misfire_grace_seconds: float | None = None
    catch_up: bool = False  # calendar triggers: run once at start-up if slots passed while down
    retries: int = 0  # more attempts of a run that ends `error` or `timeout` (scheduling/retries.py)
    retry_backoff: float = DEFAULT_RETRY_BACKOFF_SECONDS  # the first retry waits 0.5-1 times this
    checkin_url: str | None = None  # GET after each successful run (scheduling/checkins.py)
    # Derived once at declaration: inspecting a function costs tens of µs on every run otherwise.
    is_async: bool = field(init=False)
    takes_context: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "is_async", inspect.iscoroutinefunction(self.func))
        parameters = inspect.signature(self.func).parameters if callable(self.func) else {}
        object.__setattr__(self, "takes_context", len(parameters) >= 1)

    def grace_seconds(self, trigger: Trigger) -> float:
        """How late a run may start before it counts as missed (default: one period)."""
        if self.misfire_grace_seconds is not None:
            return self.misfire_grace_seconds
        return trigger.nominal_period_seconds


def build_spec(
    name: str,
    func: Callable[..., Any],
    *,
    trigger: schedule.Job | Trigger,
    description: str = "",
    timeout: float | None = None,
    enabled: bool = True,
    run_at_start: bool = False,
    executor: Executor = "thread",
    misfire_grace: float | None = None,
    catch_up: bool = False,
    retries: int = 0,
    retry_backoff: float = DEFAULT_RETRY_BACKOFF_SECONDS,
    checkin_url: str | None = None,
) -> TaskSpec:
    """Validates a declaration and returns its TaskSpec; raises TaskDefinitionError naming `name`."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise TaskDefinitionError(
            f"{name!r}: task name must match {NAME_PATTERN.pattern} (lower case, digits, - and _)"
        )
    if not callable(func):
        raise TaskDefinitionError(f"{name}: task function is not callable")
    try:
        parsed = (trigger if isinstance(trigger, Trigger) else Trigger.from_job(trigger)).for_task(name)
    except TriggerError as exc:
        raise TaskDefinitionError(f"{name}: invalid trigger: {exc}") from None
    if timeout is not None and timeout <= 0:
        raise TaskDefinitionError(f"{name}: timeout must be positive, got {timeout}")
    if misfire_grace is not None and misfire_grace < 0:
        raise TaskDefinitionError(f"{name}: misfire_grace must be >= 0, got {misfire_grace}")
    if executor not in ("thread", "process"):
        raise TaskDefinitionError(f"{name}: executor must be 'thread' or 'process', got {executor!r}")
    _check_catch_up(name, catch_up, parsed)
    _check_retries(name, retries, retry_backoff)
    if checkin_url is not None and not (
        isinstance(checkin_url, str) and checkin_url.startswith(("http://", "https://"))
    ):
        raise TaskDefinitionError(f"{name}: checkin_url must be an http:// or https:// URL, got {checkin_url!r}")
    spec = TaskSpec(
        name,
        func,
        parsed,
        description,
        timeout,
        enabled,
        run_at_start,
        executor,
        misfire_grace,
        catch_up,
        retries,
        float(retry_backoff),
        checkin_url,
    )
    _check_signature(spec)
    return spec


def _check_catch_up(name: str, catch_up: object, trigger: Trigger) -> None:
    if not isinstance(catch_up, bool):
        raise TaskDefinitionError(f"{name}: catch_up must be True or False, got {catch_up!r}")
    if catch_up and not trigger.is_calendar:
        raise TaskDefinitionError(
            f"{name}: catch_up needs a calendar trigger (.at(...), a weekday or cron(...)); "
            "an overdue interval task runs at start-up anyway"
        )


def _check_retries(name: str, retries: object, backoff: object) -> None:
    # bool is an int: `retries=True` is a mistake, not one retry.
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise TaskDefinitionError(f"{name}: retries must be an integer >= 0, got {retries!r}")
    if not isinstance(backoff, (int, float)) or isinstance(backoff, bool) or not 0 < backoff < float("inf"):
        raise TaskDefinitionError(f"{name}: retry_backoff must be a positive number of seconds, got {backoff!r}")


def _check_signature(spec: TaskSpec) -> None:
    """Process tasks take no arguments and must be importable (module-level) for pickling."""
    try:
        parameters = inspect.signature(spec.func).parameters
    except (TypeError, ValueError):
        raise TaskDefinitionError(f"{spec.name}: cannot inspect the task function") from None
    required = [
        p
        for p in parameters.values()
        if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if len(required) > 1:
        raise TaskDefinitionError(f"{spec.name}: task function takes at most one argument (TaskContext)")
    if spec.executor == "process":
        if spec.is_async:
            raise TaskDefinitionError(f"{spec.name}: executor='process' needs a plain def function")
        if required:
            raise TaskDefinitionError(f"{spec.name}: executor='process' functions take no arguments")
        if "<locals>" in spec.func.__qualname__ or "<lambda>" in spec.func.__qualname__:
            raise TaskDefinitionError(f"{spec.name}: executor='process' needs a module-level function (it is pickled)")


def check_function(name: str, func: Callable[..., Any]) -> None:
    """A runtime-usable function: a name like a task's, callable, and `ctx` as its only positional
    parameter (the rest are keyword arguments a task fills from JSON). Raises TaskDefinitionError."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise TaskDefinitionError(f"{name!r}: function name must match {NAME_PATTERN.pattern}")
    if not callable(func):
        raise TaskDefinitionError(f"{name}: function is not callable")
    try:
        parameters = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        raise TaskDefinitionError(f"{name}: cannot inspect the function") from None
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not positional:
        raise TaskDefinitionError(f"{name}: a runtime function takes the TaskContext as its first parameter")
    if any(p.default is inspect.Parameter.empty for p in positional[1:]) or any(
        p.kind is p.VAR_POSITIONAL for p in parameters
    ):
        raise TaskDefinitionError(f"{name}: besides ctx, a runtime function's parameters must be keyword arguments")


class TaskRegistry:
    """An ordered set of TaskSpecs with unique names."""

    def __init__(self) -> None:
        self._specs: dict[str, TaskSpec] = {}
        # Functions operators may make tasks of at runtime (scheduling/runtime.py), by name.
        self.functions: dict[str, Callable[..., Any]] = {}

    def add_function(self, name: str, func: Callable[..., Any]) -> None:
        """Declares `func` runtime-usable as `name`; raises TaskDefinitionError if it is not
        usable or the name is taken."""
        check_function(name, func)
        if self.functions.get(name, func) is not func:
            raise TaskDefinitionError(f"{name}: a function with this name is already declared")
        self.functions[name] = func

    def function(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator form of `add_function`; returns the function unchanged."""

        def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
            self.add_function(name, func)
            return func

        return decorate

    def add(self, spec: TaskSpec) -> TaskSpec:
        """Adds `spec`; raises TaskDefinitionError if the name is taken."""
        if spec.name in self._specs:
            raise TaskDefinitionError(f"{spec.name}: a task with this name is already registered")
        self._specs[spec.name] = spec
        return spec

    def register(self, name: str, func: Callable[..., Any], **options: Any) -> TaskSpec:
        """Declares a task from a function; options as for `build_spec`. Returns the spec."""
        return self.add(build_spec(name, func, **options))

    def task(self, name: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator form of `register`; returns the function unchanged."""

        def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
            self.register(name, func, **options)
            return func

        return decorate

    def get(self, name: str) -> TaskSpec | None:
        """The spec named `name`, or None."""
        return self._specs.get(name)

    def __iter__(self) -> Iterator[TaskSpec]:
        return iter(list(self._specs.values()))

    def __len__(self) -> int:
        return len(self._specs)

    def copy(self) -> TaskRegistry:
        """A new registry with the same specs (tests add to a copy, not the shared one)."""
        clone = TaskRegistry()
        clone._specs = dict(self._specs)
        clone.functions = dict(self.functions)
        return clone


# The registry task modules declare into (services/ and the modules named by TASK_MODULES).
tasks = TaskRegistry()
