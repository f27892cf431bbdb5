"""What ConsumerSupervisor needs from its parts: the saved enable flag and one consumer worker.

Protocols, so the supervisor's restart logic is tested with small fakes (tests/test_consumer_unit.py)
while ConsumerWorker and TaskStateStore satisfy them as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from servicescheduler.consumers.storing.watchdog import RunningHandler
from servicescheduler.storage.task_state import SavedTaskState

if TYPE_CHECKING:  # status.py imports the Kafka client: not needed to supervise a worker
    from servicescheduler.consumers.running.status import WorkerSnapshot


class StateStore(Protocol):
    """Persisted task states with an audited change log (storage.task_state.TaskStateStore)."""

    def load(self) -> Mapping[str, SavedTaskState]: ...

    def create(self, states: dict[str, tuple[bool, int | None]]) -> None: ...

    def change(
        self, name: str, *, actor: str, action: str, detail: dict[str, Any] | None = None, **values: object
    ) -> object: ...


class Worker(Protocol):
    """One consumer thread (consumers.worker.ConsumerWorker)."""

    @property
    def fatal_error(self) -> str | None: ...

    def start(self) -> None: ...

    def stop(self, timeout: float) -> bool: ...

    def is_alive(self) -> bool: ...

    def running_handler(self) -> RunningHandler | None: ...

    def snapshot(self) -> WorkerSnapshot: ...
