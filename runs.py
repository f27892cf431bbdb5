"""The life of one run: start it on the executor, detect misses and overruns, account for its end.

Separate from the scheduler's *when* logic: this module only knows how a due run becomes a
finished, counted, logged and stored RunRecord.
"""

from __future__ import annotations

import threading
import time
import itertools
import os
from typing import TYPE_CHECKING

from execution import Outcome
from logs import get_logger
from registry import TaskContext
from runlog import RunRecord
from taskstate import TaskRuntime

if TYPE_CHECKING:
    from scheduler import ServiceScheduler

log = get_logger(__name__)

OVERRUN = "overrun"
# Run ids: a random per-process prefix plus a counter. uuid4() reads os.urandom on every call,
# ~20 µs on these VMs: the single largest cost of starting a run.
_RUN_ID_PREFIX = os.urandom(8).hex()
_run_counter = itertools.count(1)


def new_run_id() -> str:
    """A unique run id (28 hex characters): unique across processes, ordered within one."""
    return f"{_RUN_ID_PREFIX}{next(_run_counter):012x}"
SPIN_SECONDS = 0.0003  # the OS wakes sleepers about this late: yield-spin the last stretch


class RunLauncher:
    """Starts runs of a ServiceScheduler's tasks and accounts for how they end."""

    def __init__(self, scheduler: ServiceScheduler, lock: threading.RLock, stopping: threading.Event) -> None:
        self._scheduler = scheduler
        self._lock = lock
        self._stopping = stopping
        self._metrics = scheduler.metrics
        self._clock = scheduler.clock

    def start(self, runtime: TaskRuntime, trigger: str, scheduled_for: float | None) -> str:
        run = RunRecord(new_run_id(), runtime.name, trigger, scheduled_for, self._clock())
        runtime.running, runtime.overrunning = run, False
        if scheduled_for is not None:
            runtime.anchor = scheduled_for
        if runtime.spec.timeout_seconds and not runtime.spec.is_async:
            self._scheduler._push(run.started_at + runtime.spec.timeout_seconds, OVERRUN, runtime.name, 0, run.run_id)
        self._scheduler.executor.submit(self._execute, runtime, run)
        return run.run_id

    def _execute(self, runtime: TaskRuntime, run: RunRecord) -> None:
        """Worker-thread side of a run: wait for the due time, missed-check, invoke, finish."""
        if run.scheduled_for is not None:
            self._wait_until(run.scheduled_for)
        run.started_at = self._clock()
        grace = runtime.grace_seconds()
        if run.trigger == "schedule" and run.scheduled_for is not None and run.started_at - run.scheduled_for > grace:
            self._finish(runtime, run, Outcome("missed", f"waited {run.started_at - run.scheduled_for:.3f} s for a worker"))
            return
        context = TaskContext(runtime.name, run.run_id, run.trigger, run.scheduled_for,
                              self._scheduler.settings, self._scheduler.database,
                              self._scheduler.extras)
        outcome = self._scheduler.executor.invoke(runtime.spec, context)
        timeout = runtime.spec.timeout_seconds
        elapsed = self._clock() - run.started_at
        if outcome.outcome == "success" and timeout and elapsed > timeout:
            outcome = Outcome("timeout", f"ran {elapsed:.3f} s, past its {timeout:g} s timeout "
                                         "(sync runs cannot be cancelled)")
        self._finish(runtime, run, outcome)

    def _finish(self, runtime: TaskRuntime, run: RunRecord, outcome: Outcome) -> None:
        run.finished_at, run.outcome, run.error = self._clock(), outcome.outcome, outcome.error
        with self._lock:
            runtime.running, runtime.overrunning = None, False
            self._account(runtime, run)
            rerun = runtime.rerun_requested and not self._stopping.is_set()
            runtime.rerun_requested = False
            if rerun:
                self.start(runtime, "event", None)
        self._log_run(run, outcome)

    def record_unstarted(self, runtime: TaskRuntime, due: float, outcome: str, reason: str) -> None:
        run = RunRecord(new_run_id(), runtime.name, "schedule", due, self._clock())
        run.finished_at, run.outcome, run.error = run.started_at, outcome, reason
        self._account(runtime, run)
        self._log_run(run, Outcome(outcome, reason))

    def _account(self, runtime: TaskRuntime, run: RunRecord) -> None:
        runtime.stats[run.outcome] += 1
        runtime.last_run = run
        self._metrics.task_runs.labels(run.task, run.outcome).inc()
        if run.outcome in ("success", "error", "timeout"):
            self._metrics.task_run_duration.labels(run.task).observe((run.duration_ms or 0) / 1000)
        if run.outcome == "success":
            runtime.last_success_at = run.finished_at
            self._metrics.task_last_success.labels(run.task).set(run.finished_at)
        self._scheduler.recorder.record(run)

    def _log_run(self, run: RunRecord, outcome: Outcome) -> None:
        fields = dict(task=run.task, run_id=run.run_id, trigger=run.trigger, outcome=run.outcome,
                      duration_ms=run.duration_ms, error=run.error)
        if outcome.outcome == "error":
            log.error("task_run", traceback=outcome.traceback, **fields)
        elif outcome.outcome in ("timeout", "missed", "skipped"):
            log.warning("task_run", **fields)
        else:
            log.info("task_run", **fields)

    def mark_overrun(self, runtime: TaskRuntime, run_id: str) -> None:
        if runtime.running is not None and runtime.running.run_id == run_id:
            runtime.overrunning = True
            log.warning("task_overrunning", task=runtime.name, run_id=run_id,
                        timeout_seconds=runtime.spec.timeout_seconds,
                        note="sync runs cannot be cancelled; later runs are skipped until it returns")

    def _wait_until(self, due: float) -> None:
        """Sleeps until `due` (scheduler clock), at most a few ms: runs are dispatched just early."""
        remaining = due - self._clock()
        if remaining > SPIN_SECONDS:
            time.sleep(remaining - SPIN_SECONDS)
        deadline = time.monotonic() + max(0.0, due - self._clock())
        while time.monotonic() < deadline:
            time.sleep(0)
