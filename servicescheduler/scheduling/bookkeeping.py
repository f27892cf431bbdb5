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
from servicescheduler.storage.records import RunRecord
from servicescheduler.vocabulary import RunCause, RunOutcome

log = get_logger(__name__)

_WARNED = frozenset({RunOutcome.TIMEOUT, RunOutcome.MISSED, RunOutcome.SKIPPED, RunOutcome.INTERRUPTED})


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
        self._recorder.record(dataclasses.replace(run, outcome=RunOutcome.RUNNING))

    def interrupted_at_startup(self, runs: list[RunRecord]) -> None:
        """Counts and logs runs a dead process left in progress (already stored `interrupted`)."""
        for run in runs:
            self._metrics.task_runs.labels(run.task, RunOutcome.INTERRUPTED).inc()
            log.warning(
                "task_run",
                task=run.task,
                run_id=run.run_id,
                trigger=run.cause,
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
                    task,
                    run,
                    Outcome(RunOutcome.INTERRUPTED, f"still running when the service stopped ({grace:g} s grace)"),
                )

    def finished(
        self,
        task: TrackedTask,
        run: RunRecord,
        outcome: Outcome,
        plan_retry: Callable[[RunRecord], float | None] | None = None,
    ) -> None:
        """Closes `run` with `outcome`, counts it, queues it for storage and logs it. `plan_retry`
        (the closed run) returns the due time of its next attempt, if one is planned: stored with
        the run's end, so the end and the pending retry are one transaction."""
        run.finished_at, run.outcome, run.error = self._clock(), outcome.outcome, outcome.error
        if plan_retry is not None:
            run.retry_due = plan_retry(run)  # before it is queued: the recorder thread reads it
        self._account(task, run)
        self._log(run, outcome)

    def unstarted(
        self,
        task: TrackedTask,
        due: float,
        outcome: RunOutcome,
        reason: str,
        cause: str = RunCause.SCHEDULE,
        attempt: int = 1,
    ) -> None:
        """Records a scheduled run (or a retry) that did not start (`skipped` or `missed`)."""
        run = RunRecord(new_run_id(), task.name, cause, due, self._clock(), replica=self._replica, attempt=attempt)
        run.finished_at, run.outcome, run.error = run.started_at, outcome, reason
        self._account(task, run)
        self._log(run, Outcome(outcome, reason))

    def _account(self, task: TrackedTask, run: RunRecord) -> None:
        assert run.outcome is not None and run.finished_at is not None
        task.stats[run.outcome] += 1
        task.last_run = run
        self._metrics.task_runs.labels(run.task, run.outcome).inc()
        if run.outcome.ran:
            self._metrics.task_run_duration.labels(run.task).observe((run.duration_ms or 0) / 1000)
        if run.outcome is RunOutcome.SUCCESS:
            task.last_success_at = run.finished_at
            self._metrics.task_last_success.labels(run.task).set(run.finished_at)
        self._recorder.record(run)

    @staticmethod
    def _log(run: RunRecord, outcome: Outcome) -> None:
        fields = dict(
            task=run.task,
            run_id=run.run_id,
            trigger=run.cause,  # the log line's key, as before the internal rename
            outcome=run.outcome,
            duration_ms=run.duration_ms,
            error=run.error,
            replica=run.replica,
            attempt=run.attempt,
        )
        if outcome.outcome == RunOutcome.ERROR:
            log.error("task_run", traceback=outcome.traceback, **fields)
        elif outcome.outcome in _WARNED:
            log.warning("task_run", **fields)
        else:
            log.info("task_run", **fields)
