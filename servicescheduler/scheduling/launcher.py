"""RunLauncher: how one run happens once the scheduler has decided it is due.

It waits on a worker thread for the exact due time, checks that the run is not hopelessly late,
invokes the task through the executor and reports the outcome through a callback. It holds no
task state and takes no lock: the scheduler accounts for the outcome under its own lock.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable
from typing import Protocol

from servicescheduler import tracing
from servicescheduler.logs import get_logger
from servicescheduler.scheduling.executor import Outcome, TaskExecutor
from servicescheduler.scheduling.registry import TaskContext
from servicescheduler.scheduling.tracked import TrackedTask
from servicescheduler.storage.records import RunRecord
from servicescheduler.support.exception_text import exception_text, traceback_text
from servicescheduler.vocabulary import RunCause, RunOutcome

log = get_logger(__name__)

# Run ids: a random per-process prefix plus a counter. uuid4() reads os.urandom on every call,
# ~20 µs on these VMs: the single largest cost of starting a run.
_RUN_ID_PREFIX = os.urandom(8).hex()
_run_counter = itertools.count(1)
# Runs that hold a slot of their own and are given up, not started, when disabled or too late.
_SLOTTED = frozenset({RunCause.SCHEDULE, RunCause.RETRY})
SPIN_SECONDS = 0.0003  # the OS wakes sleepers about this late: yield-spin the last stretch

ContextFactory = Callable[[TrackedTask, RunRecord], TaskContext]
FinishedCallback = Callable[[TrackedTask, RunRecord, Outcome], None]


class Gate(Protocol):
    """Cluster hook (scheduling/coordination.py): admits a run before it starts, releases it after."""

    def admit(self, task: str, run: RunRecord) -> Outcome | None: ...

    def release(self, task: str, run_id: str) -> None: ...


def new_run_id() -> str:
    """A unique run id (28 hex characters): unique across processes, ordered within one."""
    return f"{_RUN_ID_PREFIX}{next(_run_counter):012x}"


class RunLauncher:
    """Executes runs on the executor's workers and reports each outcome to `finished`."""

    def __init__(
        self,
        executor: TaskExecutor,
        clock: Callable[[], float],
        make_context: ContextFactory,
        finished: FinishedCallback,
        gate: Gate | None = None,
        admitted: Callable[[RunRecord], None] = lambda run: None,
        succeeded: Callable[[TrackedTask, RunRecord], None] | None = None,
    ) -> None:
        self._executor = executor
        self._gate = gate
        self._admitted = admitted  # the run is ours to run: its start is recorded from here
        self._clock = clock
        self._make_context = make_context
        self._finished = finished
        self._succeeded = succeeded  # after a successful run: its check-in (scheduling/checkins.py)

    def launch(self, task: TrackedTask, run: RunRecord, started: threading.Event | None = None) -> None:
        """Hands `run` to a worker thread; returns at once. `started` is set as the task's code
        is about to run (or as soon as it is known that it will not)."""
        self._executor.submit(self._execute, task, run, started)

    def _execute(self, task: TrackedTask, run: RunRecord, started: threading.Event | None = None) -> None:
        try:
            self._go(task, run, started)
        finally:
            if started is not None:
                started.set()  # whatever happened, whoever waits for the start waits no longer

    def _go(self, task: TrackedTask, run: RunRecord, started: threading.Event | None) -> None:
        """Worker-thread side of a run: claim (cluster), wait for the due time, missed-check, invoke, report."""
        if self._gate is not None:
            # Claimed during the early hand-off, before the wait: the round trip is not lateness.
            refused = self._gate.admit(task.name, run)
            if refused is not None:
                self._finished(task, run, refused)
                return
        self._admitted(run)
        span = None
        try:
            if run.scheduled_for is not None:
                self._wait_until(run.scheduled_for)
            run.started_at = self._clock()
            span = tracing.start_run(task.name, run.run_id, run.cause, run.attempt, run.trace_link)  # None: off
            if span is None:
                outcome = self._run(task, run, started)
            else:
                with tracing.activated(span):
                    outcome = self._run(task, run, started)
        except BaseException as exc:  # the executor itself failed: the run must still end
            outcome = Outcome(
                RunOutcome.ERROR, f"the executor failed: {exception_text(exc)}", traceback_text(exc), exception=exc
            )
        tracing.end_run(span, outcome.outcome, outcome.error, outcome.exception)
        self._end(task, run, outcome)
        if outcome.outcome is RunOutcome.SUCCESS and self._succeeded is not None:
            try:
                self._succeeded(task, run)
            except Exception as exc:  # the run is recorded already; its check-in is extra
                log.error("run_succeeded_hook_failed", task=task.name, run_id=run.run_id, error=exception_text(exc))

    def _end(self, task: TrackedTask, run: RunRecord, outcome: Outcome) -> None:
        """Releases the run's lease and reports its outcome, each whatever the other does: a run
        that never reaches `finished` stays `running` and skips every later slot of its task."""
        try:
            if self._gate is not None:
                self._gate.release(task.name, run.run_id)  # before the callback: a next run may take it
        except Exception as exc:  # the lease expires by itself; the outcome must still be reported
            log.error("run_release_failed", task=task.name, run_id=run.run_id, error=exception_text(exc))
        try:
            self._finished(task, run, outcome)
        except Exception as exc:
            log.critical(
                "run_finish_failed",
                task=task.name,
                run_id=run.run_id,
                outcome=outcome.outcome,
                error=exception_text(exc),
                traceback=traceback_text(exc),
            )

    def _run(self, task: TrackedTask, run: RunRecord, started: threading.Event | None = None) -> Outcome:
        # Handed over early (2 ms, 100 ms in a cluster): an operator may have disabled the task
        # since. A scheduled run of a disabled task never starts (a plain read: a bool flips whole).
        if run.cause in _SLOTTED and not task.enabled:
            return Outcome(RunOutcome.SKIPPED, "the task was disabled before this run started")
        late = 0.0 if run.scheduled_for is None else run.started_at - run.scheduled_for
        if run.cause in _SLOTTED and late > task.grace_seconds():
            return Outcome(RunOutcome.MISSED, f"waited {late:.3f} s for a worker")
        context = self._make_context(task, run)
        if started is not None:
            # The waiter (a request thread) wakes now but finds this thread holding the GIL:
            # the task's first line comes before the rest of its response.
            started.set()
        outcome = self._executor.invoke(task.spec, context)
        timeout = task.spec.timeout_seconds
        elapsed = self._clock() - run.started_at
        if outcome.outcome is RunOutcome.SUCCESS and timeout and elapsed > timeout:
            outcome = Outcome(
                RunOutcome.TIMEOUT,
                f"ran {elapsed:.3f} s, past its {timeout:g} s timeout (sync runs cannot be cancelled)",
            )
        return outcome

    def _wait_until(self, due: float) -> None:
        """Sleeps until `due` (scheduler clock), at most a few ms: runs are dispatched just early."""
        remaining = due - self._clock()
        if remaining > SPIN_SECONDS:
            time.sleep(remaining - SPIN_SECONDS)
        deadline = time.monotonic() + max(0.0, due - self._clock())
        while time.monotonic() < deadline:
            time.sleep(0)
