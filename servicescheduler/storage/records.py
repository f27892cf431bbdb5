"""Plain records the service keeps in memory, logs and stores: a run, an audit entry.

No ORM here: the scheduler builds these, storage turns them into rows (storage/history.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from servicescheduler.support.clock import iso, utcnow
from servicescheduler.vocabulary import RunOutcome


@dataclass
class RunRecord:
    """One run as it is kept in memory, logged and stored."""

    run_id: str
    task: str
    # Why it ran: a RunCause (a plain str: a caller of Scheduler.trigger() may name its own).
    # Stored and published as `trigger`, its name before it was told apart from the Trigger rule.
    cause: str
    scheduled_for: float | None
    started_at: float
    finished_at: float | None = None
    outcome: RunOutcome | None = None
    error: str | None = None
    replica: str | None = None  # the replica that ran (or recorded) it; None outside a cluster
    attempt: int = 1  # 1 for a run itself, 2.. for its retries (cause `retry`)
    # W3C traceparent of the request that asked for the run (POST /tasks/{name}/run): its span
    # links to it. In memory only.
    trace_link: str | None = field(default=None, repr=False, compare=False)
    # A failed run's next attempt is due then (epoch seconds): stored with the run's end, in the
    # same transaction, as the task's pending retry (storage/history.py). In memory otherwise.
    retry_due: float | None = field(default=None, repr=False, compare=False)

    @property
    def duration_ms(self) -> float | None:
        """Wall time of the run in milliseconds, once finished."""
        if self.finished_at is None:
            return None
        return round((self.finished_at - self.started_at) * 1000, 3)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view used by the API."""
        return {
            "run_id": self.run_id,
            "trigger": self.cause,
            "scheduled_for": iso(self.scheduled_for),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "duration_ms": self.duration_ms,
            "outcome": self.outcome,
            "error": self.error,
            "replica": self.replica,
            "attempt": self.attempt,
        }


@dataclass(frozen=True)
class AuditRecord:
    """Who changed what, when: one row of the audit log."""

    actor: str
    action: str
    target: str
    detail: dict[str, Any] | None = None
    at: datetime = field(default_factory=utcnow)
