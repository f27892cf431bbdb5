"""TrackedTask: what the scheduler tracks in memory for one registered task, and its JSON status view."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from servicescheduler.logs import get_logger
from servicescheduler.scheduling.errors import InvalidTask
from servicescheduler.scheduling.registry import TaskSpec
from servicescheduler.scheduling.retries import PendingRetry
from servicescheduler.scheduling.runtime import trigger_from_json, trigger_to_json
from servicescheduler.scheduling.task_status import TaskStatus, current_run
from servicescheduler.scheduling.triggers import Trigger
from servicescheduler.settings import Settings
from servicescheduler.storage.records import RunRecord
from servicescheduler.storage.runtime_tasks import RuntimeDefinition
from servicescheduler.storage.task_state import SavedTaskState
from servicescheduler.support.clock import iso
from servicescheduler.vocabulary import STAT_NAMES, RunOutcome

log = get_logger(__name__)

# Runs counted in stats["runs"]: those that started (an interrupted one too), not the unstarted.
_COUNTED_AS_RUNS = (RunOutcome.SUCCESS, RunOutcome.ERROR, RunOutcome.TIMEOUT, RunOutcome.INTERRUPTED)


@dataclass
class TrackedTask:
    """Everything the scheduler tracks for one task. Guarded by the scheduler's lock."""

    spec: TaskSpec
    trigger: Trigger
    enabled: bool
    interval_override: int | None = None
    next_due: float | None = None
    generation: int = 0
    running: RunRecord | None = None
    overrunning: bool = False
    rerun_requested: bool = False
    run_requests_dropped: int = 0  # event-triggered requests refused while disabled
    last_run: RunRecord | None = None
    last_success_at: float | None = None
    anchor: float | None = None  # scheduled_for of the last run that started: the grid origin
    pending_retry: PendingRetry | None = None  # the next attempt of a failed run (this replica's)
    stats: Counter[RunOutcome] = field(default_factory=Counter)
    cron_override: dict[str, Any] | None = None  # an operator's cron line ({"cron", "tz"})
    runtime: RuntimeDefinition | None = None  # set for tasks created at runtime

    @classmethod
    def restore(cls, spec: TaskSpec, state: SavedTaskState | None, settings: Settings) -> TrackedTask:
        """The tracked state of `spec`: persisted operator intent wins over settings, settings over code."""
        enabled = settings.task_enabled.get(spec.name, spec.enabled)
        override = settings.task_intervals.get(spec.name)
        if state is not None:
            enabled, override = state.enabled, state.interval_seconds
        tracked = cls(spec, Trigger.interval(override) if override else spec.trigger, enabled, override)
        if state is not None and state.cron_override:
            tracked.set_trigger(None, state.cron_override)
        if state is not None:
            tracked.anchor, tracked.last_success_at = state.last_run_scheduled_for, state.last_success_at
            tracked.stats.update(state.stats)
            tracked.last_run = state.last_run
        return tracked

    def set_trigger(self, interval_seconds: int | None, cron_line: dict[str, Any] | None) -> None:
        """Applies an operator's trigger: an interval, a cron line, or neither (the declared one)."""
        trigger = self.spec.trigger
        if cron_line:
            try:
                trigger = trigger_from_json(cron_line).for_task(self.name)
            except InvalidTask as exc:  # e.g. a zone this replica's tzdata lacks: keep the declared one
                log.error("task_trigger_unusable", task=self.name, trigger=cron_line, error=str(exc))
                cron_line = None
        elif interval_seconds:
            trigger = Trigger.interval(interval_seconds)
        self.trigger, self.interval_override, self.cron_override = trigger, interval_seconds, cron_line

    def is_overdue(self, now: float) -> bool:
        """True when the task never ran or its last run is at least one period old (interval
        triggers only: calendar triggers keep their absolute times)."""
        if self.trigger.is_calendar:
            return False
        return self.anchor is None or now - self.anchor >= self.trigger.nominal_period_seconds

    @property
    def name(self) -> str:
        """The task's name."""
        return self.spec.name

    def grace_seconds(self) -> float:
        """How late a run may start before it counts as missed."""
        return self.spec.grace_seconds(self.trigger)

    def is_stale(self, now: float) -> bool:
        """Enabled, and no success within three periods (after it has had the chance)."""
        if not self.enabled:
            return False
        limit = 3 * self.trigger.nominal_period_seconds
        reference = self.last_success_at
        if reference is None:
            return self.stats[RunOutcome.ERROR] + self.stats[RunOutcome.TIMEOUT] >= 3
        return now - reference > limit

    def status(self, now: float) -> TaskStatus:
        """The task as the API shows it (caller holds the scheduler's lock)."""
        stats = self.stats
        counts = {label: stats.get(outcome, 0) for outcome, label in STAT_NAMES.items()}
        counts["runs"] = sum(stats.get(outcome, 0) for outcome in _COUNTED_AS_RUNS)
        return TaskStatus(
            name=self.name,
            description=self.spec.description,
            enabled=self.enabled,
            schedule=self.trigger.describe(),
            interval_seconds=self.trigger.interval_seconds,
            at=self.trigger.at,
            interval_overridden=self.interval_override is not None,
            executor=self.spec.executor,
            timeout_seconds=self.spec.timeout_seconds,
            next_run_at=iso(self.next_due) if self.enabled else None,
            running=self.running is not None,
            current_run=current_run(self.running, self.overrunning) if self.running is not None else None,
            last_run=self.last_run,  # shared: a run is not changed once it is a task's last run
            last_success_at=iso(self.last_success_at),
            stale=self.is_stale(now),
            stats=counts,
            run_requests_dropped=self.run_requests_dropped,
            retries=self.spec.retries,
            pending_retry=self.pending_retry,
            trigger=trigger_to_json(self.trigger),
            origin="runtime" if self.runtime is not None else "code",
            function=self.runtime.function if self.runtime is not None else None,
            kwargs=dict(self.runtime.kwargs) if self.runtime is not None else None,
        )
