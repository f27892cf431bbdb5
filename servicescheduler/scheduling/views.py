"""SchedulerViews: the read-only half of the Scheduler (what the API, /health and tests
inspect). A mixin over the scheduler's own state, always read under its lock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from servicescheduler.scheduling.agenda import Agenda
from servicescheduler.scheduling.errors import UnknownTask
from servicescheduler.scheduling.recorder import RunRecorder
from servicescheduler.scheduling.task_status import TaskStatus
from servicescheduler.scheduling.tracked import TrackedTask
from servicescheduler.settings import Settings


class SchedulerViews:
    """Inspection methods of Scheduler."""

    # Provided by Scheduler.
    settings: Settings
    clock: Callable[[], float]
    recorder: RunRecorder
    loop_error: str | None
    wake_deadline: float | None
    _lock: threading.RLock
    _tasks: dict[str, TrackedTask]
    _agenda: Agenda
    _thread: threading.Thread | None

    def _get(self, name: str) -> TrackedTask:
        task = self._tasks.get(name)
        if task is None:
            raise UnknownTask(name)
        return task

    def require(self, name: str) -> None:
        """Raises UnknownTask unless `name` is a registered task."""
        if name not in self._tasks:
            raise UnknownTask(name)

    def names(self) -> list[str]:
        """Registered task names, in registration order."""
        return list(self._tasks)

    def status(self, name: str) -> TaskStatus:
        """The API view of one task; raises UnknownTask."""
        with self._lock:
            return self._get(name).status(self.clock())

    def statuses(self) -> list[TaskStatus]:
        """The API view of every task."""
        now = self.clock()
        with self._lock:
            return [task.status(now) for task in self._tasks.values()]

    def upcoming(self, name: str, count: int) -> list[float]:
        """The next `count` due times of `name` (epoch seconds): the planned one, then its
        trigger's `next_fire` from there. Empty when disabled or unscheduled; raises UnknownTask."""
        with self._lock:
            task = self._get(name)
            first, trigger = (task.next_due if task.enabled else None), task.trigger
        if first is None or count < 1:
            return []
        later = trigger.upcoming(datetime.fromtimestamp(first, UTC), count - 1)
        return [first, *(fire.timestamp() for fire in later)]

    def next_due(self, name: str) -> float | None:
        """When `name` runs next (epoch seconds), None when disabled or unscheduled."""
        with self._lock:
            return self._get(name).next_due

    def running_tasks(self) -> list[str]:
        """Names of tasks with a run in progress."""
        with self._lock:
            return sorted(t.name for t in self._tasks.values() if t.running)

    def agenda_size(self) -> int:
        """Items queued in the agenda (superseded ones included until compacted)."""
        with self._lock:
            return len(self._agenda)

    def stale_tasks(self) -> list[str]:
        """Enabled tasks with no success within three periods."""
        now = self.clock()
        with self._lock:
            return [t.name for t in self._tasks.values() if t.is_stale(now)]

    def is_running(self, name: str) -> bool:
        """True while a run of `name` is in progress."""
        with self._lock:
            return self._get(name).running is not None

    def health(self) -> tuple[bool, str]:
        """(alive, reason): the loop thread runs and has not overslept its own deadline."""
        if self._thread is None or not self._thread.is_alive():
            return False, self.loop_error or "scheduler loop thread is not running"
        deadline = self.wake_deadline
        if deadline is not None and self.clock() - deadline > self.settings.loop_stall_seconds:
            return False, f"scheduler loop is {self.clock() - deadline:.1f} s late for its wake-up"
        return True, "ok"

    def wait_idle(self, timeout: float) -> bool:
        """Waits until no run is in progress and the history is stored (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running_tasks():
                return self.recorder.flush(max(0.0, deadline - time.monotonic()))
            time.sleep(0.005)
        return False
