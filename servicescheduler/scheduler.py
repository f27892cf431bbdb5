"""Scheduler: the engine that decides *when* tasks run and hands due runs to the executor.

One named daemon thread (the loop) sleeps on a `threading.Event` until the earliest due time
in a heap, dispatches what is due and goes back to sleep: a wake-up costs O(due tasks), never a
scan of every task. It never runs task code. Control calls (enable, disable, trigger,
reschedule) come from request threads, change state under one lock and wake the loop.
`tick(now)` performs one loop step, so tests need no real waiting.

A run's life (outcomes: vocabulary.RunOutcome; who may run a slot: scheduling/coordination.py)::

    due ── loop thread, Scheduler._dispatch_due, under the scheduler lock ──┬──> missed   past its grace
     │     (a manual or event run starts here instead: request thread,      └──> skipped  previous run going
     │      Scheduler.trigger / request_run; trigger takes the coordinator's      (recorded once:
     │      lease first, so a run anywhere in the cluster answers 409)          coordinator.claim_unstarted)
     v
    dispatched   task.running = run; handed to a worker `dispatch_lead_seconds` early (2 ms alone,
     │           100 ms in a cluster). Alone every claim wins here: the `running` row is queued now.
     v
    claimed      worker thread, RunLauncher._execute -> coordinator.admit. In a cluster one transaction
     │           claims the slot and takes the task's lease (DatabaseCoordinator's lock guards the
     │           leases it holds): a loser drops the slot (UNCLAIMED), a live lease elsewhere gives
     │           `skipped`, a failed claim `missed`; the winner queues the `running` row now.
     v
    started      worker, RunLauncher._run: waits for the due time; `skipped` if the task was disabled
     │           meanwhile, `missed` if no worker came within the grace; then the task's code runs
     │           (executor.invoke, no lock held).
     v
    finished     success / error / timeout: coordinator.release, then Scheduler._finished under the
     │           scheduler lock -> RunBook: counters, metrics, the recorder's queue, one `task_run` line.
     │           error / timeout with attempts left (TaskSpec.retries): Scheduler._plan_retry keeps a
     │           PendingRetry on the task and queues a RETRY item at the failed run's end + the backoff
     v           (scheduling/retries.py); stored with the run's end (recover_orphaned_retries re-plans
                 it after a restart, or on another replica once this one is dead).
    retry due    loop thread, Scheduler._dispatch_retry: a run with cause `retry`, attempt n+1 and
                 scheduled_for = its due time, back at `dispatched` (claimed and leased like a slot).
                 Dropped instead (Scheduler._drop_retry: a `skipped` row, cause `retry`) when the
                 task is disabled, its next slot is dispatched first, a manual or event run starts,
                 or a run of the task is still going.

    interrupted  Scheduler.stop for runs past the shutdown grace (scheduler lock); at start-up,
                 storage/recovery.py for rows a dead process left `running`; in a cluster,
                 DatabaseCoordinator._take for the lease of a replica that stopped renewing it.

Locks: `_lock` (reentrant) guards every TrackedTask and the agenda; `_control_lock` serialises an
operator's change with its persisted version (enable, disable, reschedule, apply_control); the
recorder thread alone writes history. Task code never runs under any of them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any

import schedule

from servicescheduler.logs import get_logger
from servicescheduler.metrics import Metrics
from servicescheduler.scheduling.agenda import Agenda, DueItem
from servicescheduler.scheduling.bookkeeping import RunBook
from servicescheduler.scheduling.checkins import CheckIns
from servicescheduler.scheduling.coordination import UNCLAIMED, Coordinator, LocalCoordinator
from servicescheduler.scheduling.downtime import record_downtime
from servicescheduler.scheduling.errors import InvalidTask, TaskBusy, TaskConflict, UnknownTask
from servicescheduler.scheduling.executor import Outcome, TaskExecutor
from servicescheduler.scheduling.launcher import RunLauncher, new_run_id
from servicescheduler.scheduling.recorder import RunRecorder
from servicescheduler.scheduling.registry import DEFAULT_RETRY_BACKOFF_SECONDS, TaskContext, TaskRegistry, TaskSpec
from servicescheduler.scheduling.retries import PendingRetry, jitter_for, retry_delay
from servicescheduler.scheduling.runtime import build_runtime_spec, trigger_from_json, trigger_to_json
from servicescheduler.scheduling.supervision import Components, Supervised
from servicescheduler.scheduling.task_status import TaskStatus
from servicescheduler.scheduling.tracked import TrackedTask
from servicescheduler.scheduling.triggers import Trigger, TriggerError
from servicescheduler.scheduling.views import SchedulerViews
from servicescheduler.settings import Settings
from servicescheduler.storage import runtime_tasks
from servicescheduler.storage.control import ControlState
from servicescheduler.storage.db import Database
from servicescheduler.storage.records import AuditRecord, RunRecord
from servicescheduler.storage.recovery import interrupt_orphans
from servicescheduler.storage.runtime_tasks import RuntimeDefinition
from servicescheduler.storage.task_state import SavedTaskState, StoredRetry, TaskStateStore, stored_retries
from servicescheduler.support.clock import iso, to_datetime
from servicescheduler.vocabulary import RunCause, RunOutcome

log = get_logger(__name__)

RUN, OVERRUN, SUPERVISE, RETRY = "run", "overrun", "supervise", "retry"
# How long a control call that starts a run now (trigger, enable) waits for its task's code to
# start before it returns. While the request thread waits it needs no GIL, so the hand-offs to
# the loop and the worker (and the worker's claim) are not queued behind the building of the
# HTTP response (benchmark 4). Bounded: a run that waits for a free worker does not hold it.
START_HANDOFF_SECONDS = 0.05
# The outcomes a declared retry follows (not `interrupted`: the process is going away).
_RETRIED = frozenset({RunOutcome.ERROR, RunOutcome.TIMEOUT})


def _ignore(run: RunRecord) -> None:
    """A launcher callback with nothing to do."""


class Scheduler(SchedulerViews):
    """Registry-driven scheduler with persisted state, run history and an overlap guard."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        registry: TaskRegistry,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
        extras: dict[str, Any] | None = None,
        coordinator: Coordinator | None = None,
    ) -> None:
        self.settings = settings
        self.database = database
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.extras = extras or {}  # handed to tasks in TaskContext.extras
        self.executor = TaskExecutor(settings.worker_threads, settings.process_workers, settings.process_pool_nice)
        self.recorder = RunRecorder(database, self.metrics, settings.recorder_queue_limit)
        self.states = TaskStateStore(database)
        # Who may run a slot (scheduling/coordination.py): this process alone by default; with a
        # DatabaseCoordinator, slots are claimed and runs leased in the database, so several
        # replicas share one schedule.
        self.coordinator: Coordinator = coordinator or LocalCoordinator()
        self.replica_id = self.coordinator.replica_id
        self._versions: dict[str, int] = {}  # task → control version last applied here
        self._recovered: set[str] = set()  # failed runs whose stored retry was re-planned here
        self._lead = self.coordinator.dispatch_lead_seconds
        self._book = RunBook(self.metrics, self.recorder, clock, self.replica_id)
        # A run's start is stored once it is claimed: alone, as it is dispatched; in a cluster, once
        # its worker won the slot (a replica that lost it leaves no row).
        self._start_at_dispatch = self.coordinator.claims_at_dispatch
        self.checkins = CheckIns(settings, self.metrics)
        self._launcher = RunLauncher(
            self.executor,
            clock,
            self._context,
            self._finished,
            self.coordinator,
            admitted=_ignore if self._start_at_dispatch else self._book.started,
            succeeded=lambda task, run: self.checkins.after_success(task.spec, run.run_id),
        )
        self._registry = registry
        self._tasks: dict[str, TrackedTask] = {}
        # Runtime tasks deleted while a run of theirs went on: no longer listed, but stop() still
        # waits for that run and records it `interrupted` past the grace, as any other.
        self._departed: list[TrackedTask] = []
        # task → set when the next run of the task starts its code: a control call waits on it.
        self._handoffs: dict[str, threading.Event] = {}
        self._agenda = Agenda()
        self._lock = threading.RLock()
        self._control_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._components = Components()
        self.loop_error: str | None = None
        self.last_wake_at: float | None = None
        self.wake_deadline: float | None = None
        self.wakeups = 0
        self.metrics.on_scrape(self._refresh_metrics)

    # ------------------------------------------------------------------ lifecycle
    def start(self, *, run_loop: bool = True) -> None:
        """Loads persisted state, plans every task's first run and starts the loop thread.

        With SCHEDULER_ENABLED=false no run is planned: the loop still supervises the consumer,
        and manual and event-requested runs still work.
        """
        # Runs left `running` by a dead process become `interrupted`; in a cluster, those of live
        # replicas are theirs to finish (and a replica that dies later is reaped by lease expiry).
        live = self.coordinator.live_replicas()
        self._book.interrupted_at_startup(interrupt_orphans(self.database, spare=live))
        now = self.clock()
        self.coordinator.seed(self.states, self._initial_states, now)
        saved = self.states.load()
        first_seen: dict[str, tuple[bool, int | None]] = {}
        with self._lock:
            for spec in self._registry:
                task = self._restore(spec, saved, now)
                if spec.name not in saved:
                    first_seen[spec.name] = (task.enabled, task.interval_override)
            for definition in runtime_tasks.active(self.database):
                self._restore_runtime(definition, saved, now)
        self.states.create(first_seen)
        self.recover_orphaned_retries(live)  # the predecessor's, and those of replicas gone meanwhile
        self.recorder.start()
        for task in self._tasks.values():
            log.info(
                "task_registered",
                task=task.name,
                schedule=task.trigger.describe(),
                enabled=task.enabled,
                executor=task.spec.executor,
                next_run_at=iso(task.next_due),
            )
        for name in self._components.names():
            self._agenda.push(now, SUPERVISE, name, 0, "")
        if run_loop:
            self._thread = threading.Thread(target=self._loop, name="scheduler-loop", daemon=True)
            self._thread.start()

    def _initial_states(self) -> dict[str, tuple[bool, int | None, float | None]]:
        """{task: (enabled, interval override, grid period)} as a first start would persist them."""
        initial = {}
        for spec in self._registry:
            task = TrackedTask.restore(spec, None, self.settings)
            period = None if task.trigger.is_calendar else task.trigger.nominal_period_seconds
            initial[spec.name] = (task.enabled, task.interval_override, period)
        return initial

    def _restore_runtime(self, definition: RuntimeDefinition, saved: dict[str, SavedTaskState], now: float) -> None:
        """Plans a persisted runtime task; one this replica cannot build (a function its code
        does not declare, a name now declared in code) is logged and left out, never fatal."""
        self._versions[definition.name] = definition.version
        if self._registry.get(definition.name) is not None:
            log.error("runtime_task_unavailable", task=definition.name, error="a task of this name is declared in code")
            return
        try:
            spec = build_runtime_spec(definition, self._registry.functions)
        except InvalidTask as exc:
            log.error("runtime_task_unavailable", task=definition.name, error=str(exc))
            return
        self._restore(spec, saved, now).runtime = definition

    def _restore(self, spec: TaskSpec, saved: dict[str, SavedTaskState], now: float) -> TrackedTask:
        name = spec.name
        task = self._tasks[name] = TrackedTask.restore(spec, saved.get(name), self.settings)
        self._export_control(task)
        if task.last_success_at is not None:
            self.metrics.task_last_success.labels(name).set(task.last_success_at)
        if task.enabled:
            catch_up = record_downtime(task, self.database, self._book, now)
            startup = spec.run_at_start or task.is_overdue(now)
            label = RunCause.STARTUP if startup else RunCause.CATCH_UP if catch_up else RunCause.SCHEDULE
            self._plan(task, now, due_now=startup or catch_up, label=label)
        return task

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
        self._components.stop_all(
            lambda: min(self.settings.kafka_stop_timeout_seconds, max(0.1, deadline - time.monotonic()))
        )
        unfinished = self._wait_for_runs(deadline)
        if unfinished:
            log.warning("shutdown_tasks_unfinished", tasks=unfinished, waited_seconds=timeout)
        self.executor.shutdown()
        self.checkins.close()
        with self._lock:
            self._book.interrupt_unfinished([*self._tasks.values(), *self._departed], timeout)
            for task in self._tasks.values():
                if task.pending_retry is not None:  # persisted with its failed run: re-planned at start-up
                    pending, task.pending_retry = task.pending_retry, None
                    log.info("task_retry_carried_over", task=task.name, attempt=pending.attempt, due=iso(pending.due))
        self.recorder.stop(max(1.0, deadline - time.monotonic()))
        log.info("scheduler_stopped", unfinished=unfinished)
        return unfinished

    def _wait_for_runs(self, deadline: float) -> list[str]:
        while time.monotonic() < deadline and self._unfinished():
            time.sleep(0.02)
        return self._unfinished()

    def _unfinished(self) -> list[str]:
        """Tasks with a run going, those deleted while it ran included."""
        with self._lock:
            return sorted({*self.running_tasks(), *(task.name for task in self._departed if task.running)})

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
            # Handled after popping: what handling pushes (next runs, next checks) waits for
            # the next tick, so a component that asks to be checked "now" cannot spin this loop.
            for item in self._agenda.pop_due(now + self._lead):
                self._handle(item, now)
            next_due = self.wake_deadline = self._agenda.next_due()
        return None if next_due is None else max(0.0, next_due - self._lead - self.clock())

    def _handle(self, item: DueItem, now: float) -> None:
        if item.kind == SUPERVISE:
            self._check_component(item.name, now)
            return
        task = self._tasks.get(item.name)
        if task is None:
            return
        if item.kind == OVERRUN:
            self._mark_overrun(task, item.label)
        elif item.kind == RETRY:
            self._dispatch_retry(task, item.label)
        elif item.generation == task.generation and task.enabled:
            self._dispatch_due(task, item.due, now, item.label)

    def _dispatch_due(self, task: TrackedTask, due: float, now: float, label: str) -> None:
        if task.pending_retry is not None:
            self._drop_retry(task, "the task's next scheduled slot came before this retry")
        self._plan_next(task, due, now)
        if now - due > task.grace_seconds() and label != RunCause.STARTUP:
            self._unstarted(task, due, RunOutcome.MISSED, f"started {now - due:.3f} s late")
        elif task.running is not None:
            self._unstarted(task, due, RunOutcome.SKIPPED, f"previous run {task.running.run_id} still running")
        else:
            self._start_run(task, label, due)

    def _unstarted(
        self,
        task: TrackedTask,
        due: float,
        outcome: RunOutcome,
        reason: str,
        cause: str = RunCause.SCHEDULE,
        attempt: int = 1,
    ) -> None:
        """Records a slot (or a retry) that will not run, once: alone at once, in a cluster by the
        replica that claims it (off the loop: the claim is I/O)."""

        def record() -> None:
            with self._lock:  # reentrant: held already when called from the loop
                self._book.unstarted(task, due, outcome, reason, cause, attempt)

        self.coordinator.claim_unstarted(task.name, due, record, self.executor.submit)

    def _check_component(self, name: str, now: float) -> None:
        next_check = self._components.check(name, now)
        if next_check is not None:
            self._agenda.push(next_check, SUPERVISE, name, 0, "")

    # ------------------------------------------------------------------ runs
    def _start_run(
        self,
        task: TrackedTask,
        cause: str,
        scheduled_for: float | None,
        run_id: str | None = None,
        attempt: int = 1,
        trace_link: str | None = None,
        started: threading.Event | None = None,
    ) -> str:
        """Marks `task` running and launches a run (caller holds the lock). `started` is set as
        its code starts (by default: the event a control call waits on, _expect_start)."""
        if task.pending_retry is not None and cause != RunCause.RETRY:
            self._drop_retry(task, f"a {cause} run started before this retry was due")
        run_id = run_id or new_run_id()
        run = RunRecord(run_id, task.name, cause, scheduled_for, self.clock(), replica=self.replica_id, attempt=attempt)
        run.trace_link = trace_link
        task.running, task.overrunning = run, False
        if self._start_at_dispatch:
            self._book.started(run)
        if scheduled_for is not None and cause != RunCause.RETRY:  # a retry's due time is off the grid
            task.anchor = scheduled_for
        if task.spec.timeout_seconds and not task.spec.is_async:
            self._agenda.push(run.started_at + task.spec.timeout_seconds, OVERRUN, task.name, 0, run.run_id)
        self._launcher.launch(task, run, started or self._handoffs.pop(task.name, None))
        return run.run_id

    def _expect_start(self, task: TrackedTask) -> threading.Event | None:
        """Before a control change that may make `task` due now: the event its next run will set as
        it starts (None without the loop thread, which would dispatch that run)."""
        if self._thread is None:
            return None
        handoff = threading.Event()
        with self._lock:
            self._handoffs[task.name] = handoff
        return handoff

    def _await_start(self, task: TrackedTask, handoff: threading.Event) -> None:
        """After the change: waits (START_HANDOFF_SECONDS at most) for the run it made due now."""
        with self._lock:
            launched = self._handoffs.get(task.name) is not handoff  # a run took it already
            due_now = task.next_due is not None and task.next_due <= self.clock() + self._lead
            if not launched and not due_now:
                del self._handoffs[task.name]  # its next run is a later slot: nothing to wait for
                return
        handoff.wait(START_HANDOFF_SECONDS)
        with self._lock:
            if self._handoffs.get(task.name) is handoff:
                del self._handoffs[task.name]

    def _finished(self, task: TrackedTask, run: RunRecord, outcome: Outcome) -> None:
        """Launcher callback (worker thread): account, then start a requested follow-up run."""
        with self._lock:
            if task.running is not run:
                return  # already recorded `interrupted` by stop()
            task.running, task.overrunning = None, False
            if self._departed and self._tasks.get(task.name) is not task:
                self._departed = [other for other in self._departed if other is not task]
            asked = self.coordinator.take_rerun(task.name)
            wanted, task.rerun_requested = task.rerun_requested or asked, False
            current = self._tasks.get(task.name) is task  # False: a runtime task removed while it ran
            # A requested follow-up run is the next attempt: no retry besides it.
            follow_up = wanted and task.enabled and not self._stopping.is_set() and current
            retried = not follow_up and current and outcome.outcome in _RETRIED and run.attempt <= task.spec.retries
            if outcome is not UNCLAIMED:  # cluster: a slot another replica won is not ours to count
                # The retry is planned as the run closes: its due time is stored with the run's end.
                plan = (lambda failed: self._plan_retry(task, failed)) if retried else None
                self._book.finished(task, run, outcome, plan)
            if wanted and not task.enabled:  # an operator's disable also holds against events
                self._drop_request(task)
            elif follow_up:
                self._start_run(task, RunCause.EVENT, None)
                return
            if not retried and outcome.outcome in _RETRIED and task.spec.retries > 0:
                # Its last attempt failed: the alert on given-up work (TaskRetriesExhausted) reads this.
                self.metrics.task_retries.labels(task.name, "exhausted").inc()

    def _context(self, task: TrackedTask, run: RunRecord) -> TaskContext:
        return TaskContext(
            task.name, run.run_id, run.cause, run.scheduled_for, self.settings, self.database, self.extras, run.attempt
        )

    # ------------------------------------------------------------------ retries
    def _plan_retry(self, task: TrackedTask, failed: RunRecord) -> float | None:
        """Queues the next attempt of `failed` (caller holds the lock); returns its due time, which
        is stored with the failed run's end (a restart re-plans it: recover_retry), or None when it
        is dropped at once. The attempt claims its due time as a slot like any scheduled run."""
        attempt = failed.attempt + 1
        ended = self.clock() if failed.finished_at is None else failed.finished_at
        due = ended + retry_delay(attempt, task.spec.retry_backoff, jitter_for(failed.run_id))
        task.pending_retry = PendingRetry(attempt, due, failed.run_id)
        if not task.enabled:  # a manual run of a disabled task failed
            self._drop_retry(task, "the task is disabled")
            return None
        if task.next_due is not None and task.next_due <= due:
            self._drop_retry(task, f"the task's next scheduled slot ({iso(task.next_due)}) comes first")
            return None
        self.metrics.task_retries.labels(task.name, "scheduled").inc()
        log.info("task_retry_scheduled", task=task.name, attempt=attempt, due=iso(due), after_run=failed.run_id)
        if not self._stopping.is_set():  # stopping: stored only, the next start runs it
            self._queue_retry(task)
        return due

    def _queue_retry(self, task: TrackedTask) -> None:
        """Puts the pending retry of `task` on the agenda and wakes the loop (caller holds the lock)."""
        pending = task.pending_retry
        assert pending is not None
        self._agenda.push(pending.due, RETRY, task.name, 0, pending.token)
        if self.wake_deadline is None or pending.due < self.wake_deadline:
            # Pushed off the loop: the loop recomputes it once woken, but simulate() steps
            # from it between ticks and must see the retry now.
            self.wake_deadline = pending.due
        self._wake.set()

    def recover_orphaned_retries(self, live: frozenset[str] | None = None) -> None:
        """Re-plans the stored pending retries of processes that are gone: at start-up (this
        process's predecessor's) and, in a cluster, on each heartbeat (ClusterSync: replicas
        killed, or stopped and carried over). A live replica's own stay its own. Several replicas
        may re-plan one retry: its slot claim lets one of them run it (or record its drop), once."""
        stored = stored_retries(self.database)
        if not stored:
            return
        if live is None:  # a heartbeat: this replica's own retries are in its memory already
            live = self.coordinator.live_replicas() | {self.replica_id or ""}
        now = self.clock()
        for name, (retry, replica) in stored.items():
            task = self._tasks.get(name)
            if task is not None and replica not in live:
                self.recover_retry(task, retry, now)

    def recover_retry(self, task: TrackedTask, stored: StoredRetry, now: float) -> None:
        """Re-plans a persisted pending retry (start-up; in a cluster, one a dead replica left).
        Its due time is kept, so every replica that re-plans it claims the same slot: it runs,
        or is dropped, once. Dropped when the task is disabled, declares fewer retries now, or
        its next regular slot after the failure came before the retry can run."""
        with self._lock:
            known = task.pending_retry
            if (
                stored.after_run in self._recovered
                or (known is not None and known.token == stored.after_run)
                or (task.running is not None and task.running.cause == RunCause.RETRY)
            ):
                return  # this replica's own, or handled here already (its row is cleared soon)
            self._recovered.add(stored.after_run)
            task.pending_retry = PendingRetry(stored.attempt, stored.due, stored.after_run)
            slot = None
            if stored.attempt >= 2:
                delay = retry_delay(stored.attempt, task.spec.retry_backoff, jitter_for(stored.after_run))
                slot = task.trigger.next_due(task.anchor, stored.due - delay)  # the first slot after the failure
            if not task.enabled:
                self._drop_retry(task, "the task is disabled")
            elif not 2 <= stored.attempt <= task.spec.retries + 1:
                self._drop_retry(task, f"the task declares {task.spec.retries} retries now")
            elif slot is not None and slot <= max(stored.due, now):
                self._drop_retry(task, f"the task's next scheduled slot ({iso(slot)}) came before this retry")
            else:
                log.info(
                    "task_retry_recovered",
                    task=task.name,
                    attempt=stored.attempt,
                    due=iso(stored.due),
                    after_run=stored.after_run,
                    replica=self.replica_id,
                )
                self._queue_retry(task)

    def _dispatch_retry(self, task: TrackedTask, token: str) -> None:
        """Loop thread: starts a pending retry that is due (one superseded since is ignored)."""
        pending = task.pending_retry
        if pending is None or pending.token != token:
            return
        if task.running is not None:  # never two runs of one task: given up, like a skipped slot
            self._drop_retry(task, f"run {task.running.run_id} was still running when this retry was due")
            return
        task.pending_retry = None
        self._start_run(task, RunCause.RETRY, pending.due, attempt=pending.attempt)

    def _drop_retry(self, task: TrackedTask, reason: str) -> None:
        """Gives up the pending retry of `task`, recorded once as a `skipped` run (caller holds the lock)."""
        pending, task.pending_retry = task.pending_retry, None
        if pending is None:
            return
        self.metrics.task_retries.labels(task.name, "dropped").inc()
        self._unstarted(task, pending.due, RunOutcome.SKIPPED, reason, RunCause.RETRY, pending.attempt)

    def _mark_overrun(self, task: TrackedTask, run_id: str) -> None:
        if task.running is not None and task.running.run_id == run_id:
            task.overrunning = True
            log.warning(
                "task_overrunning",
                task=task.name,
                run_id=run_id,
                timeout_seconds=task.spec.timeout_seconds,
                note="sync runs cannot be cancelled; later runs are skipped until it returns",
            )

    # ------------------------------------------------------------------ planning
    def _plan(self, task: TrackedTask, now: float, *, due_now: bool, label: str = RunCause.SCHEDULE) -> None:
        """Invalidates queued runs of `task` and queues its next one (none without SCHEDULER_ENABLED)."""
        task.generation += 1
        if not self.settings.scheduler_enabled:
            task.next_due = None
            return
        task.next_due = self._due_now(task, now) if due_now else task.trigger.next_due(task.anchor, now)
        self._push_run(task, label)
        self._wake.set()

    def _due_now(self, task: TrackedTask, now: float) -> float:
        """When a run due "now" is scheduled for: in a cluster, an overdue task's latest grid slot,
        so that every replica claims the same slot (run_at_start alone: each replica's own start)."""
        if task.anchor is None or not task.is_overdue(now):
            return now
        return self.coordinator.overdue_slot(task.anchor, task.trigger.nominal_period_seconds, now)

    def _plan_next(self, task: TrackedTask, previous_due: float | None, now: float) -> None:
        task.next_due = task.trigger.next_due(previous_due, now)
        self._push_run(task, RunCause.SCHEDULE)

    def _push_run(self, task: TrackedTask, label: str) -> None:
        if task.next_due is None:
            return
        self._agenda.push(task.next_due, RUN, task.name, task.generation, label)
        if len(self._agenda) > 4 * len(self._tasks) + 64:
            # Toggles and reschedules leave superseded runs behind; drop them in bulk.
            self._agenda.compact(
                lambda item: (
                    item.kind != RUN
                    or (item.name in self._tasks and self._tasks[item.name].generation == item.generation)
                )
            )

    # ------------------------------------------------------------------ control
    def set_enabled(self, name: str, enabled: bool, *, actor: str = "admin") -> TaskStatus:
        """Enables or disables a task at once and persists it; idempotent. Returns its status."""
        handoff = None
        with self._control_lock:
            task = self._get(name)
            if task.enabled != enabled:
                version = self.states.change(
                    name, actor=actor, action="enable" if enabled else "disable", enabled=enabled
                )
                handoff = self._expect_start(task) if enabled else None
                self._apply(task, enabled, task.interval_override, version)
                log.info("task_enabled" if enabled else "task_disabled", task=name, actor=actor)
        if handoff is not None:
            self._await_start(task, handoff)
        return self.status(name)

    def reschedule(self, name: str, interval_seconds: int, *, actor: str = "admin") -> TaskStatus:
        """Changes a task's interval at once (kept on its grid) and persists it. Returns its status."""
        return self.retrigger(name, {"interval_seconds": interval_seconds}, actor=actor)

    def retrigger(self, name: str, trigger: dict[str, Any], *, actor: str = "admin") -> TaskStatus:
        """Replaces a task's trigger by `{"interval_seconds": N}` or `{"cron": ..., "tz": ...}` at
        once and persists it (raises InvalidTask saying why it cannot). Returns its status."""
        with self._control_lock:
            task = self._get(name)
            parsed = trigger_from_json(trigger)  # validated before it is persisted
            spelled = trigger_to_json(parsed) or trigger  # the zone spelled out: every replica reads the same
            interval = spelled.get("interval_seconds")
            self._change_trigger(task, interval, None if interval is not None else spelled, spelled, actor)
            log.info("task_rescheduled", task=name, trigger=spelled, actor=actor)
            return self.status(name)

    def reset_trigger(self, name: str, *, actor: str = "admin") -> TaskStatus:
        """Drops an operator's trigger (PATCH): the task is back on its configured one, its
        TASK_<NAME>_INTERVAL_SECONDS if set, else its declaration's (a runtime task's: the one it
        was created with). Persisted, on every replica. Returns its status."""
        with self._control_lock:
            task = self._get(name)
            interval = self.settings.task_intervals.get(name) if task.runtime is None else None
            configured = Trigger.interval(interval) if interval else task.spec.trigger
            detail = {"reset": trigger_to_json(configured) or configured.describe()}
            self._change_trigger(task, interval, None, detail, actor)
            log.info("task_trigger_reset", task=name, schedule=configured.describe(), actor=actor)
            return self.status(name)

    def _change_trigger(
        self,
        task: TrackedTask,
        interval: int | None,
        cron_line: dict[str, Any] | None,
        detail: dict[str, Any],
        actor: str,
    ) -> None:
        """Persists and applies a task's new trigger override (caller holds the control lock)."""
        values: dict[str, Any] = {"interval_seconds": interval, "cron_override": cron_line}
        calendar = cron_line is not None or (interval is None and task.spec.trigger.is_calendar)
        if not calendar and task.anchor is None:
            # An interval needs a grid origin every replica agrees on (a cron task may never have run).
            task.anchor = float(int(self.clock()))
            values["last_run_scheduled_for"] = to_datetime(task.anchor)
        version = self.states.change(task.name, actor=actor, action="reschedule", detail=detail, **values)
        self._apply(task, task.enabled, interval, version, cron_line)

    # ------------------------------------------------------------------ runtime tasks
    def add_task(
        self,
        name: str,
        function: str,
        trigger: Trigger | schedule.Job | dict[str, Any],
        *,
        kwargs: dict[str, Any],
        enabled: bool = True,
        description: str = "",
        retries: int = 0,
        retry_backoff: float = DEFAULT_RETRY_BACKOFF_SECONDS,
        checkin_url: str | None = None,
        actor: str = "admin",
    ) -> TaskStatus:
        """Creates a task from a declared function (scheduling/runtime.py), persisted and audited;
        raises InvalidTask (422) or TaskConflict (409). Returns its status."""
        with self._control_lock:
            if self._registry.get(name) is not None or name in self._tasks:
                raise TaskConflict(f"a task named {name!r} exists already")
            spelled = trigger if isinstance(trigger, dict) else trigger_to_json(_as_trigger(trigger))
            if spelled is None:
                raise InvalidTask("a runtime task's trigger is a cron(...) line or a plain interval")
            definition = RuntimeDefinition(
                name,
                function,
                dict(spelled),
                dict(kwargs),
                description,
                retries=retries,
                retry_backoff=retry_backoff,
                checkin_url=checkin_url,
            )
            spec = build_runtime_spec(definition, self._registry.functions)
            definition = dataclasses.replace(definition, trigger=trigger_to_json(spec.trigger) or definition.trigger)
            # An interval task's grid starts now (first run one interval later) on every replica.
            anchor = None if spec.trigger.is_calendar else float(int(self.clock()))
            version = runtime_tasks.create(
                self.database,
                definition,
                enabled=enabled,
                anchor=None if anchor is None else to_datetime(anchor),
                actor=actor,
            )
            if version is None:
                raise TaskConflict(f"a task named {name!r} exists already")
            definition = dataclasses.replace(definition, version=version)
            # Read back as a restart would: a name used before keeps its run history and counts.
            saved = self.states.load().get(name) or SavedTaskState(enabled, None, anchor, None)
            self._install(definition, spec, saved)
            log.info("task_created", task=name, function=function, trigger=definition.trigger, actor=actor)
            return self.status(name)

    def remove_task(self, name: str, *, actor: str = "admin") -> None:
        """Deletes a runtime task (its run history stays); a run in progress finishes. Raises
        TaskConflict for a task declared in code, UnknownTask when no runtime task has the name."""
        with self._control_lock:
            if self._registry.get(name) is not None:
                raise TaskConflict(f"task {name!r} is declared in code; disable it instead")
            version = runtime_tasks.remove(self.database, name, actor=actor)
            if version is None:
                raise UnknownTask(name)
            self._uninstall(name, version)
            log.info("task_deleted", task=name, actor=actor)

    def apply_definition(self, definition: RuntimeDefinition) -> None:
        """Cluster hook: a runtime task created or deleted by any replica (its own are no-ops)."""
        with self._control_lock:
            name = definition.name
            if definition.version <= self._versions.get(name, 0) or self._registry.get(name) is not None:
                return
            if definition.deleted:
                self._uninstall(name, definition.version)
                log.info("task_deleted", task=name, version=definition.version, replica=self.replica_id)
                return
            try:
                spec = build_runtime_spec(definition, self._registry.functions)
            except InvalidTask as exc:
                self._versions[name] = definition.version
                log.error("runtime_task_unavailable", task=name, error=str(exc))
                return
            saved = self.states.load().get(name) or SavedTaskState(True, None, None, None)
            self._uninstall(name, definition.version)  # a name deleted and created again meanwhile
            self._install(definition, spec, saved)
            log.info("task_created", task=name, version=definition.version, replica=self.replica_id)

    def _install(self, definition: RuntimeDefinition, spec: TaskSpec, saved: SavedTaskState) -> None:
        """Tracks and plans a runtime task (caller holds the control lock)."""
        self._versions[spec.name] = max(definition.version, self._versions.get(spec.name, 0))
        with self._lock:
            task = self._tasks[spec.name] = TrackedTask.restore(spec, saved, self.settings)
            task.runtime = definition
            self._export_control(task)
            if task.enabled:
                now = self.clock()
                self._plan(task, now, due_now=task.is_overdue(now))

    def _uninstall(self, name: str, version: int) -> None:
        """Forgets a runtime task: queued runs are dropped, one in progress finishes and is recorded
        (and is waited for, or interrupted, by stop())."""
        self._versions[name] = max(version, self._versions.get(name, 0))
        with self._lock:
            task = self._tasks.pop(name, None)
            if task is None:
                return
            task.generation += 1
            task.next_due = None
            task.rerun_requested = False
            self._drop_retry(task, "the task was deleted")
            if task.running is not None:
                self._departed.append(task)
            for gauge in (self.metrics.task_enabled, self.metrics.task_interval):
                with contextlib.suppress(KeyError):
                    gauge.remove(name)

    def apply_control(self, state: ControlState) -> None:
        """Cluster hook: applies a change persisted by any replica (this one's own are no-ops)."""
        with self._control_lock:
            task = self._tasks.get(state.name)
            if task is None or state.version <= self._versions.get(state.name, 0):
                return
            if task.anchor is None and state.anchor is not None:
                task.anchor = state.anchor  # the grid origin of a switch to an interval (retrigger)
            changed = (
                task.enabled != state.enabled
                or task.interval_override != state.interval_seconds
                or task.cron_override != state.cron
            )
            self._apply(task, state.enabled, state.interval_seconds, state.version, state.cron, replan=changed)
            if changed:
                log.info(
                    "task_control_applied",
                    task=state.name,
                    enabled=state.enabled,
                    interval_seconds=state.interval_seconds,
                    version=state.version,
                    replica=self.replica_id,
                )

    def _apply(
        self,
        task: TrackedTask,
        enabled: bool,
        interval_seconds: int | None,
        version: int,
        cron_line: dict[str, Any] | None = None,
        *,
        replan: bool = True,
    ) -> None:
        """Sets a task's enabled flag and trigger and re-plans it (caller holds the control lock)."""
        self._versions[task.name] = max(version, self._versions.get(task.name, 0))
        if not replan:
            return
        with self._lock:
            if interval_seconds != task.interval_override or cron_line != task.cron_override:
                task.set_trigger(interval_seconds, cron_line)
            task.enabled = enabled
            self._export_control(task)
            if enabled:
                now = self.clock()
                self._plan(task, now, due_now=task.is_overdue(now))
            else:
                task.generation += 1
                task.next_due = None
                self._drop_retry(task, "the task was disabled")
                if task.rerun_requested:  # a follow-up asked for before the disable
                    task.rerun_requested = False
                    self._drop_request(task)

    def _export_control(self, task: TrackedTask) -> None:
        """Publishes what control changes: the enabled flag and the interval (as a nominal period)."""
        self.metrics.task_enabled.labels(task.name).set(1 if task.enabled else 0)
        self.metrics.task_interval.labels(task.name).set(task.trigger.nominal_period_seconds)
        # The counters alert rules take increase() of start at 0: a series born at its first event
        # (value 1) shows Prometheus no increase, and the alert would miss that first failure.
        if task.spec.retries > 0:
            self.metrics.task_retries.labels(task.name, "exhausted")
        if self.checkins.url(task.spec) is not None:
            for outcome in ("ok", "failed"):
                self.metrics.task_checkins.labels(task.name, outcome)

    def trigger(
        self, name: str, *, actor: str = "admin", label: str = RunCause.MANUAL, trace_link: str | None = None
    ) -> str:
        """Starts a run now, even when disabled; raises TaskBusy while one runs (on any replica).
        Returns its run id. `trace_link`: the W3C traceparent of the request asking for it (the
        run's span links to it)."""
        run_id = new_run_id()
        with self._lock:
            self._raise_if_running(self._get(name))
        self.coordinator.acquire(name, run_id, label)  # in a cluster, the lease makes the guard cluster-wide
        started = threading.Event()
        try:
            with self._lock:
                task = self._get(name)
                self._raise_if_running(task)
                self._start_run(task, label, None, run_id, trace_link=trace_link, started=started)
        except TaskBusy:
            self.coordinator.abandon(name, run_id)
            raise
        started.wait(START_HANDOFF_SECONDS)  # see START_HANDOFF_SECONDS
        # Audited through the recorder: a synchronous write here would hold the GIL (ORM flush)
        # just as the run starts, and it changes no state that must be durable first.
        self.recorder.record(AuditRecord(actor=actor, action="run", target=name, detail={"run_id": run_id}))
        log.info("task_triggered", task=name, run_id=run_id, actor=actor, trigger=label)
        return run_id

    @staticmethod
    def _raise_if_running(task: TrackedTask) -> None:
        if task.running is not None:
            raise TaskBusy(f"task {task.name!r} is running (run {task.running.run_id})")

    def request_run(self, name: str) -> bool:
        """Coalesced 'run soon' (used by the consumer): starts a run, or marks one to follow the
        current run. Returns True if a run was started now."""
        with self._lock:
            task = self._tasks.get(name)
            if task is None or self._stopping.is_set():
                return False
            if not task.enabled:  # an operator's disable also holds against events
                self._drop_request(task)
                return False
            if task.running is not None:
                task.rerun_requested = True
                return False
            self._start_run(task, RunCause.EVENT, None)
            return True

    def _drop_request(self, task: TrackedTask) -> None:
        task.run_requests_dropped += 1
        self.metrics.run_requests_dropped.labels(task.name).inc()

    def supervise(self, component: Supervised) -> None:
        """Adds a component checked by the loop (call before start())."""
        self._components.add(component)

    def wake(self, at: float | None = None, component: str | None = None) -> None:
        """Asks the loop to check `component` at `at` (default now)."""
        with self._lock:
            if component is not None:
                self._agenda.push(self.clock() if at is None else at, SUPERVISE, component, 0, "")
        self._wake.set()

    def _refresh_metrics(self) -> None:
        alive, _ = self.health()
        self.metrics.loop_alive.set(1 if alive else 0)
        if self.last_wake_at is not None:
            self.metrics.loop_heartbeat_age.set(max(0.0, self.clock() - self.last_wake_at))


def _as_trigger(trigger: Trigger | schedule.Job) -> Trigger:
    """A Trigger from `cron(...)` or `every(...)` (validated); InvalidTask saying why not."""
    if isinstance(trigger, Trigger):
        return trigger
    try:
        return Trigger.from_job(trigger)
    except TriggerError as exc:
        raise InvalidTask(f"trigger: {exc}") from None
