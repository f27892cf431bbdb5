"""The service's one vocabulary: how a run ended, what caused it, what state the consumer is in.

Every value equals the string the database, the API's JSON, the metrics' labels and the logs
carried before these enums existed (a StrEnum *is* that string), so none of them changed.
Storage, the API, the dashboard and the metrics all take their values from here: a filter the
dashboard offers cannot be one the API refuses.
"""

from __future__ import annotations

from enum import StrEnum


class RunOutcome(StrEnum):
    """How a run ended (`running` while it has not ended yet): the `outcome` column of task_run."""

    SUCCESS = "success"
    ERROR = "error"
    TIMEOUT = "timeout"  # ran past its timeout_seconds
    SKIPPED = "skipped"  # not started: the previous run was still going (or the task was disabled)
    MISSED = "missed"  # not started: too late past its due time
    INTERRUPTED = "interrupted"  # in progress when its process died or stopped
    RUNNING = "running"  # started, not ended: stored at the start so a kill -9 leaves a row

    @property
    def final(self) -> bool:
        """True for an outcome a run ends with (every one but `running`)."""
        return self is not RunOutcome.RUNNING

    @property
    def ran(self) -> bool:
        """True when the task's code actually ran (the run has a meaningful duration)."""
        return self in _RAN


_RAN = frozenset({RunOutcome.SUCCESS, RunOutcome.ERROR, RunOutcome.TIMEOUT})

# Every outcome a run ends with, in display order.
FINAL_OUTCOMES: tuple[RunOutcome, ...] = tuple(o for o in RunOutcome if o.final)

# Outcome → the name of its counter in a task's `stats` (the API's published keys).
STAT_NAMES: dict[RunOutcome, str] = {
    RunOutcome.SUCCESS: "successes",
    RunOutcome.ERROR: "failures",
    RunOutcome.TIMEOUT: "timeouts",
    RunOutcome.SKIPPED: "skipped",
    RunOutcome.MISSED: "missed",
    RunOutcome.INTERRUPTED: "interrupted",
}


class RunCause(StrEnum):
    """Why a run happened (the `trigger` column and JSON field: names kept for compatibility;
    not to be confused with `Trigger`, the rule that says when a task is due)."""

    SCHEDULE = "schedule"  # its slot on the task's trigger came due
    STARTUP = "startup"  # run_at_start, or overdue when the process started
    CATCH_UP = "catch-up"  # slots were missed while the service was down
    MANUAL = "manual"  # POST /tasks/{name}/run
    EVENT = "event"  # requested by the consumer (a follow-up run, coalesced)
    RETRY = "retry"  # a later attempt of a run that ended `error` or `timeout` (scheduling/retries.py)


class ConsumerState(StrEnum):
    """The state the consumer supervisor publishes (GET /consumer `state`, the dashboard)."""

    STARTING = "starting"  # a worker thread is bootstrapping
    RUNNING = "running"
    BACKOFF = "backoff"  # the worker died; restarted after a backoff
    CRASH_LOOPING = "crash_looping"  # restarted too often lately
    STOPPING = "stopping"  # a stopped worker's thread has not ended yet
    STUCK = "stuck"  # a worker's thread outlived its stop bound, or a handler hangs
    # Running, but storing fails (database full, read-only, locked past its timeout, down):
    # nothing is committed, the batch is retried with backoff; left when a store succeeds.
    DB_UNAVAILABLE = "db_unavailable"
    # Running and behind (lag > 0), but nothing consumed for KAFKA_STALL_SECONDS: a fetch that
    # does not return records, a client wedged inside poll(), a store that never ends.
    STALLED = "stalled"
    DISABLED = "disabled"  # the operator disabled it
    STOPPED = "stopped"  # the service is shutting down


class WorkerState(StrEnum):
    """The state one consumer worker thread publishes to its supervisor (internal)."""

    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    DB_UNAVAILABLE = "db_unavailable"  # consuming paused while the database does not answer
    FAILED = "failed"  # ended on a fatal error
    STOPPED = "stopped"
