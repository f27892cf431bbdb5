"""Plain records the service keeps in memory, logs and stores: a run, an audit entry.

No ORM here: the scheduler builds these, storage turns them into rows (storage/history.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from servicescheduler.support.clock import iso, utcnow

# Final outcomes. `interrupted`: the run was in progress when its process died or stopped.
OUTCOMES = ("success", "error", "timeout", "skipped", "missed", "interrupted")
# Outcome → the name of its counter in a task's `stats`.
STAT_NAMES = {
    "success": "successes",
    "error": "failures",
    "timeout": "timeouts",
    "skipped": "skipped",
    "missed": "missed",
    "interrupted": "interrupted",
}
# The stored outcome of a run that has started and not ended yet (not a final outcome).
RUNNING = "running"


@dataclass
class RunRecord:
    """One run as it is kept in memory, logged and stored."""

    run_id: str
    task: str
    trigger: str
    scheduled_for: float | None
    started_at: float
    finished_at: float | None = None
    outcome: str | None = None
    error: str | None = None
    replica: str | None = None  # the replica that ran (or recorded) it; None outside a cluster

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
            "trigger": self.trigger,
            "scheduled_for": iso(self.scheduled_for),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "duration_ms": self.duration_ms,
            "outcome": self.outcome,
            "error": self.error,
            "replica": self.replica,
        }


@dataclass(frozen=True)
class AuditRecord:
    """Who changed what, when: one row of the audit log."""

    actor: str
    action: str
    target: str
    detail: dict[str, Any] | None = None
    at: datetime = field(default_factory=utcnow)
