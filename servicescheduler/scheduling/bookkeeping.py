"""RunBook: what happens to a run once it has an outcome: counters, metrics, history, one log line."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

from servicescheduler.logs import get_logger
from servicescheduler.metrics import Metrics
from servicescheduler.scheduling.executor import Outcome
from servicescheduler.scheduling.launcher import new_run_id
from servicescheduler.scheduling.recorder import RunRecorder
from servicescheduler.scheduling.tracked import TrackedTask
from servicescheduler.storage.records import RUNNING, RunRecord

log = get_logger(__name__)

TIMED_OUTCOMES = ("success", "error", "timeout")  # outcomes of runs that actually ran


class RunBook:
    """Accounts for finished and unstarted runs. Called under the scheduler's lock."""

    def __init__(
        self, metrics: Metrics, recorder: RunRecorder, clock: Callable[[], float], replica: str | None = None
    ) -> None:
        self._metrics = metrics
        self._replica = replica
        self._recorder = recorder
        self._clock = clock

    def started(self, run: RunRecord) -> None:
        """Queues the start of `run` for storage (outcome `running`), so a process killed mid-run
        still leaves its row; the end of the run updates the same row (same run_id)."""
        # A copy: the worker thread goes on changing `run` while this one waits in the queue.
        self._recorder.record(dataclasses.replace(run, outcome=RUNNING))

    def interrupted_at_startup(self, runs: list[RunRecord]) -> None:
        """Counts and logs runs a dead process left in progress (already stored `interrupted`)."""
        for run in runs:
            self._metrics.task_runs.labels(run.task, "interrupted").inc()
            log.warning(
                "task_run",
                task=run.task,
                run_id=run.run_id,
                trigger=run.trigger,
                outcome=run.outcome,
                duration_ms=None,
                error=run.error,
            )

    def interrupt_unfinished(self, tasks: Iterable[TrackedTask], grace: float) -> None:
        """Records runs still going after the shutdown grace, and queued runs the pool shutdown
        cancelled, as `interrupted`: every run that started gets a final outcome before the
        recorder stops. A run that returns later finds itself no longer `running` and is ignored."""
        for task in tasks:
            if task.running is not None:
                run, task.running = task.running, None
                self.finished(
                    task, run, Outcome("interrupted", f"still running when the service stopped ({grace:g} s grace)")
                )

    def finished(self, task: TrackedTask, run: RunRecord, outcome: Outcome) -> None:
        """Closes `run` with `outcome`, counts it, queues it for storage and logs it."""
        run.finished_at, run.outcome, run.error = self._clock(), outcome.outcome, outcome.error
        self._account(task, run)
        self._log(run, outcome)

    def unstarted(self, task: TrackedTask, due: float, outcome: str, reason: str) -> None:
        """Records a scheduled run that did not start (`skipped` or `missed`)."""
        run = RunRecord(new_run_id(), task.name, "schedule", due, self._clock(), replica=self._replica)
        run.finished_at, run.outcome, run.error = run.started_at, outcome, reason
        self._account(task, run)
        self._log(run, Outcome(outcome, reason))

    def _account(self, task: TrackedTask, run: RunRecord) -> None:
        assert run.outcome is not None and run.finished_at is not None
        task.stats[run.outcome] += 1
        task.last_run = run
        self._metrics.task_runs.labels(run.task, run.outcome).inc()
        if run.outcome in TIMED_OUTCOMES:
            self._metrics.task_run_duration.labels(run.task).observe((run.duration_ms or 0) / 1000)
        if run.outcome == "success":
            task.last_success_at = run.finished_at
            self._metrics.task_last_success.labels(run.task).set(run.finished_at)
        self._recorder.record(run)

    @staticmethod
    def _log(run: RunRecord, outcome: Outcome) -> None:
        fields = dict(
            task=run.task,
            run_id=run.run_id,
            trigger=run.trigger,
            outcome=run.outcome,
            duration_ms=run.duration_ms,
            error=run.error,
            replica=run.replica,
        )
        if outcome.outcome == "error":
            log.error("task_run", traceback=outcome.traceback, **fields)
        elif outcome.outcome in ("timeout", "missed", "skipped", "interrupted"):
            log.warning("task_run", **fields)
        else:
            log.info("task_run", **fields)
