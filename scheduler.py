"""ServiceScheduler: decides *when* tasks run and hands due runs to the executor.

One named daemon thread (the loop) sleeps on a `threading.Event` until the earliest due time
in a heap, dispatches what is due and goes back to sleep: a wake-up costs O(due tasks), never a
scan of every task. It never runs task code. Control calls (enable, disable, trigger,
reschedule) come from request threads, change state under one lock and wake the loop.
`tick(now)` performs one loop step, so tests need no real waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from duequeue import DueQueue
from execution import TaskExecutor
from logs import get_logger
from metrics import Metrics
from registry import TaskRegistry
from runlog import PersistedState, RunRecorder, TaskStateStore, to_datetime
from runs import OVERRUN, RunLauncher
from settings import Settings
from storage.db import Database, utcnow
from storage.models import AuditEntry
from taskstate import TaskRuntime
from triggers import Trigger

log = get_logger(__name__)

RUN, SUPERVISE = "run", "supervise"
# Runs are handed to a worker this long before they are due; the worker waits for the exact
# time. The thread hand-off and the OS's late wake-ups (~0.25 ms each here) are thereby
# hidden instead of added to every start.
DISPATCH_LEAD_SECONDS = 0.002
MIN_CHECK_INTERVAL_SECONDS = 0.01  # a supervised component is never checked more often


class UnknownTask(KeyError):
    """No task has this name (HTTP 404)."""


class TaskBusy(RuntimeError):
    """A run of this task is in progress (HTTP 409)."""


class Supervised(Protocol):
    """A component the loop looks after (the Kafka consumer): started, checked, stopped."""

    name: str

    def start(self) -> None: ...

    def check(self, now: float) -> float | None:
        """Restarts what died; returns when to be checked next (epoch seconds)."""

    def stop(self, timeout: float) -> None: ...


class ServiceScheduler:
    """Registry-driven scheduler with persisted state, run history and an overlap guard."""

    def __init__(self, settings: Settings, database: Database, registry: TaskRegistry, *,
                 metrics: Metrics | None = None, clock: Callable[[], float] = time.time,
                 extras: dict | None = None) -> None:
        self.settings = settings
        self.database = database
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.extras = extras or {}  # handed to tasks in TaskContext.extras
        self.executor = TaskExecutor(settings.worker_threads, settings.process_workers)
        self.recorder = RunRecorder(database)
        self.states = TaskStateStore(database)
        self._registry = registry
        self._tasks: dict[str, TaskRuntime] = {}
        self._agenda = DueQueue()
        self._lock = threading.RLock()
        self._control_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._components: dict[str, Supervised] = {}
        self.loop_error: str | None = None
        self.last_wake_at: float | None = None
        self.wake_deadline: float | None = None
        self.wakeups = 0
        self.runs = RunLauncher(self, self._lock, self._stopping)
        self.metrics.on_scrape(self._refresh_metrics)

    # ------------------------------------------------------------------ lifecycle
    def start(self, *, run_loop: bool = True) -> None:
        """Loads persisted state, plans every task's first run and starts the loop thread."""
        persisted = self.states.load()
        now = self.clock()
        first_seen: dict[str, tuple[bool, int | None]] = {}
        with self._lock:
            for spec in self._registry:
                runtime = self._load_task(spec, persisted.get(spec.name), now)
                self._tasks[spec.name] = runtime
                if spec.name not in persisted:
                    first_seen[spec.name] = (runtime.enabled, runtime.interval_override)
        self.states.create(first_seen)
        self.recorder.start()
        for runtime in self._tasks.values():
            log.info("task_registered", task=runtime.name, schedule=runtime.trigger.describe(),
                     enabled=runtime.enabled, executor=runtime.spec.executor,
                     next_run_at=_iso_or_none(runtime.next_due))
        for component in self._components.values():
            self._push(now, SUPERVISE, component.name, 0)
        if run_loop:
            self._thread = threading.Thread(target=self._loop, name="scheduler-loop", daemon=True)
            self._thread.start()

    def _load_task(self, spec, state: PersistedState | None, now: float) -> TaskRuntime:
        runtime = TaskRuntime.restore(spec, state, self.settings)
        self.metrics.task_enabled.labels(spec.name).set(1 if runtime.enabled else 0)
        if runtime.last_success_at is not None:
            self.metrics.task_last_success.labels(spec.name).set(runtime.last_success_at)
        if runtime.enabled:
            startup = spec.run_at_start or runtime.is_overdue(now)
            self._plan(runtime, now, due_now=startup, label="startup" if startup else "schedule")
        return runtime

    def stop(self, timeout: float | None = None) -> list[str]:
        """Stops the loop and components, waits up to `timeout` for running tasks, shuts pools down.

        Returns the names of tasks still running when the wait ended (also logged).
        """
        timeout = self.settings.shutdown_grace_seconds if timeout is None else timeout
        deadline = time.monotonic() + timeout
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for component in self._components.values():
            component.stop(min(self.settings.kafka_stop_timeout_seconds, max(0.1, deadline - time.monotonic())))
        unfinished = self._wait_for_runs(deadline)
        if unfinished:
            log.warning("shutdown_tasks_unfinished", tasks=unfinished, waited_seconds=timeout)
        self.executor.shutdown()
        self.recorder.stop(max(1.0, deadline - time.monotonic()))
        log.info("scheduler_stopped", unfinished=unfinished)
        return unfinished

    def _wait_for_runs(self, deadline: float) -> list[str]:
        while time.monotonic() < deadline:
            with self._lock:
                if not any(t.running for t in self._tasks.values()):
                    return []
            time.sleep(0.02)
        with self._lock:
            return sorted(t.name for t in self._tasks.values() if t.running)

    def _loop(self) -> None:
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                delay = self.tick()
                self._wake.wait(timeout=delay)
        except BaseException as exc:
            self.loop_error = f"{type(exc).__name__}: {exc}"
            log.critical("scheduler_loop_died", error=self.loop_error, exc_info=True)

    # ------------------------------------------------------------------ one step
    def tick(self, now: float | None = None) -> float | None:
        """Dispatches everything due at `now` (default: the clock), in due order.

        Returns the seconds until the next due item, or None when nothing is scheduled.
        """
        now = self.clock() if now is None else now
        with self._lock:
            self.last_wake_at = now
            self.wakeups += 1
            horizon = now + DISPATCH_LEAD_SECONDS
            due_items = self._agenda.pop_due(horizon)
            # Handled after popping: what handling pushes (next runs, next checks) waits for
            # the next tick, so a component that asks to be checked "now" cannot spin this loop.
            for due, _, kind, name, generation, label in due_items:
                self._handle(kind, name, generation, label, due, now)
            next_due = self._agenda.next_due()
            self.wake_deadline = next_due
        return None if next_due is None else max(0.0, next_due - DISPATCH_LEAD_SECONDS - self.clock())

    def _handle(self, kind: str, name: str, generation: int, label: str, due: float, now: float) -> None:
        if kind == SUPERVISE:
            self._check_component(name, now)
            return
        runtime = self._tasks.get(name)
        if runtime is None:
            return
        if kind == OVERRUN:
            self.runs.mark_overrun(runtime, label)
        elif generation == runtime.generation and runtime.enabled:
            self._dispatch_due(runtime, due, now, label)

    def _dispatch_due(self, runtime: TaskRuntime, due: float, now: float, label: str) -> None:
        self._plan_next(runtime, due, now)
        if now - due > runtime.grace_seconds():
            self.runs.record_unstarted(runtime, due, "missed", f"started {now - due:.3f} s late")
        elif runtime.running is not None:
            self.runs.record_unstarted(runtime, due, "skipped",
                                       f"previous run {runtime.running.run_id} still running")
        else:
            self.runs.start(runtime, label, due)

    def _check_component(self, name: str, now: float) -> None:
        component = self._components.get(name)
        if component is None:
            return
        try:
            next_check = component.check(now)
        except Exception as exc:  # a supervisor bug must not kill the loop
            log.error("supervisor_check_failed", component=name, error=str(exc), exc_info=True)
            next_check = now + 1.0
        if next_check is not None:
            self._push(max(next_check, now + MIN_CHECK_INTERVAL_SECONDS), SUPERVISE, name, 0)

    # ------------------------------------------------------------------ planning
    def _push(self, due: float, kind: str, name: str, generation: int, label: str = "schedule") -> None:
        self._agenda.push(due, kind, name, generation, label)
        if len(self._agenda) > 4 * len(self._tasks) + 64:
            # Toggles and reschedules leave superseded runs behind; drop them in bulk.
            self._agenda.compact(lambda item: item.kind != RUN or (
                item.name in self._tasks and self._tasks[item.name].generation == item.generation))

    def _plan(self, runtime: TaskRuntime, now: float, *, due_now: bool, label: str = "schedule") -> None:
        """Invalidates queued runs of `runtime` and queues its next one."""
        runtime.generation += 1
        if due_now:
            runtime.next_due = now
        else:
            runtime.next_due = runtime.trigger.next_due(runtime.anchor, now)
        if runtime.next_due is not None:
            self._push(runtime.next_due, RUN, runtime.name, runtime.generation, label)
        self._wake.set()

    def _plan_next(self, runtime: TaskRuntime, previous_due: float | None, now: float) -> None:
        runtime.next_due = runtime.trigger.next_due(previous_due, now)
        if runtime.next_due is not None:
            self._push(runtime.next_due, RUN, runtime.name, runtime.generation)

    # ------------------------------------------------------------------ control
    def _get(self, name: str) -> TaskRuntime:
        runtime = self._tasks.get(name)
        if runtime is None:
            raise UnknownTask(name)
        return runtime

    def set_enabled(self, name: str, enabled: bool, *, actor: str = "admin") -> dict:
        """Enables or disables a task at once and persists it; idempotent. Returns its status."""
        with self._control_lock:
            runtime = self._get(name)
            if runtime.enabled != enabled:
                self.states.change(name, actor=actor, action="enable" if enabled else "disable",
                                   enabled=enabled)
                with self._lock:
                    runtime.enabled = enabled
                    self.metrics.task_enabled.labels(name).set(1 if enabled else 0)
                    if enabled:
                        self._plan(runtime, self.clock(), due_now=runtime.is_overdue(self.clock()))
                    else:
                        runtime.generation += 1
                        runtime.next_due = None
                        if runtime.rerun_requested:  # a follow-up asked for before the disable
                            runtime.rerun_requested = False
                            self._drop_request(runtime)
                log.info("task_enabled" if enabled else "task_disabled", task=name, actor=actor)
            return self.status(name)

    def reschedule(self, name: str, interval_seconds: int, *, actor: str = "admin") -> dict:
        """Changes a task's interval at once (kept on its grid) and persists it. Returns its status."""
        with self._control_lock:
            runtime = self._get(name)
            trigger = Trigger.interval(interval_seconds)
            self.states.change(name, actor=actor, action="reschedule",
                               detail={"interval_seconds": interval_seconds},
                               interval_seconds=interval_seconds)
            with self._lock:
                runtime.trigger, runtime.interval_override = trigger, interval_seconds
                if runtime.enabled:
                    now = self.clock()
                    self._plan(runtime, now, due_now=runtime.is_overdue(now))
            log.info("task_rescheduled", task=name, interval_seconds=interval_seconds, actor=actor)
            return self.status(name)

    def trigger(self, name: str, *, actor: str = "admin", label: str = "manual") -> str:
        """Starts a run now, even when disabled; raises TaskBusy while one runs. Returns its run id."""
        with self._lock:
            runtime = self._get(name)
            if runtime.running is not None:
                raise TaskBusy(f"task {name!r} is running (run {runtime.running.run_id})")
            run_id = self.runs.start(runtime, label, None)
        # Audited through the recorder: a synchronous write here would hold the GIL (ORM flush)
        # just as the run starts, and it changes no state that must be durable first.
        self.recorder.record(AuditEntry(at=utcnow(), actor=actor, action="run", target=name,
                                        detail={"run_id": run_id}))
        log.info("task_triggered", task=name, run_id=run_id, actor=actor, trigger=label)
        return run_id

    def request_run(self, name: str) -> bool:
        """Coalesced 'run soon' (used by the consumer): starts a run, or marks one to follow the
        current run. Returns True if a run was started now."""
        with self._lock:
            runtime = self._tasks.get(name)
            if runtime is None or self._stopping.is_set():
                return False
            if not runtime.enabled:  # an operator's disable also holds against events
                self._drop_request(runtime)
                return False
            if runtime.running is not None:
                runtime.rerun_requested = True
                return False
            self.runs.start(runtime, "event", None)
            return True

    def _drop_request(self, runtime: TaskRuntime) -> None:
        runtime.run_requests_dropped += 1
        self.metrics.run_requests_dropped.labels(runtime.name).inc()

    def supervise(self, component: Supervised) -> None:
        """Adds a component checked by the loop (call before start())."""
        self._components[component.name] = component

    def wake(self, at: float | None = None, component: str | None = None) -> None:
        """Asks the loop to check `component` at `at` (default now)."""
        with self._lock:
            if component is not None:
                self._push(self.clock() if at is None else at, SUPERVISE, component, 0)
        self._wake.set()

    # ------------------------------------------------------------------ inspection
    def names(self) -> list[str]:
        """Registered task names, in registration order."""
        return list(self._tasks)

    def status(self, name: str) -> dict:
        """The API view of one task; raises UnknownTask."""
        with self._lock:
            return self._get(name).status(self.clock())

    def statuses(self) -> list[dict]:
        """The API view of every task."""
        now = self.clock()
        with self._lock:
            return [runtime.status(now) for runtime in self._tasks.values()]

    def stale_tasks(self) -> list[str]:
        """Enabled tasks with no success within three periods."""
        now = self.clock()
        with self._lock:
            return [t.name for t in self._tasks.values() if t.is_stale(now)]

    def is_running(self, name: str) -> bool:
        """True while a run of `name` is in progress."""
        with self._lock:
            return self._get(name).running is not None

    def health(self) -> tuple[bool, str]:
        """(alive, reason): the loop thread runs and has not overslept its own deadline."""
        if self._thread is None or not self._thread.is_alive():
            return False, self.loop_error or "scheduler loop thread is not running"
        deadline = self.wake_deadline
        if deadline is not None and self.clock() - deadline > self.settings.loop_stall_seconds:
            return False, f"scheduler loop is {self.clock() - deadline:.1f} s late for its wake-up"
        return True, "ok"

    def wait_idle(self, timeout: float) -> bool:
        """Waits until no run is in progress and the history is stored (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                busy = any(t.running for t in self._tasks.values())
            if not busy:
                return self.recorder.flush(max(0.0, deadline - time.monotonic()))
            time.sleep(0.005)
        return False

    def _refresh_metrics(self) -> None:
        alive, _ = self.health()
        self.metrics.loop_alive.set(1 if alive else 0)
        if self.last_wake_at is not None:
            self.metrics.loop_heartbeat_age.set(max(0.0, self.clock() - self.last_wake_at))


def _iso_or_none(epoch: float | None) -> str | None:
    value = to_datetime(epoch)
    return None if value is None else value.isoformat()
