"""RunBook: what happens to a run once it has an outcome: counters, metrics, history, one log line."""

from __future__ import annotations

from collections.abc import Callable

from logs import get_logger
from metrics import Metrics
from scheduling.executor import Outcome
from scheduling.launcher import new_run_id
from scheduling.recorder import RunRecorder
from scheduling.tracked import TrackedTask
from storage.records import RunRecord

log = get_logger(__name__)

TIMED_OUTCOMES = ("success", "error", "timeout")  # outcomes of runs that actually ran


class RunBook:
    """Accounts for finished and unstarted runs. Called under the scheduler's lock."""

    def __init__(self, metrics: Metrics, recorder: RunRecorder, clock: Callable[[], float],
                 replica: str | None = None) -> None:
        self._metrics = metrics
        self._replica = replica
        self._recorder = recorder
        self._clock = clock

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
        fields = dict(task=run.task, run_id=run.run_id, trigger=run.trigger, outcome=run.outcome,
                      duration_ms=run.duration_ms, error=run.error, replica=run.replica)
        if outcome.outcome == "error":
            log.error("task_run", traceback=outcome.traceback, **fields)
        elif outcome.outcome in ("timeout", "missed", "skipped"):
            log.warning("task_run", **fields)
        else:
            log.info("task_run", **fields)
