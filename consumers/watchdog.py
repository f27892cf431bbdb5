"""HandlerWatch: knows which message a handler is running for, and since when.

Python cannot interrupt a thread, so a handler that hangs holds the consumer thread; the watch
makes that visible: the supervisor reads `running()` and reports the consumer `stuck` once a
handler outlives KAFKA_HANDLER_TIMEOUT_SECONDS (and never starts a second consumer beside it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from consumers.events import Event
from consumers.handlers import BatchWriter, HandlerRegistry, MessageMeta


@dataclass(frozen=True)
class RunningHandler:
    """A handler call in progress."""

    since: float  # time.monotonic() at its start
    event_id: str
    event_type: str
    position: str  # topic:partition@offset


class HandlerWatch:
    """Wraps a HandlerRegistry; `handle()` is timed, `running()` is safe from any thread."""

    def __init__(self, registry: HandlerRegistry) -> None:
        self.registry = registry
        self._running: RunningHandler | None = None

    def handle(self, batch: BatchWriter, event: Event, meta: MessageMeta) -> None:
        """Runs the registry's handler chain, recording the call while it lasts."""
        # One reference assignment each way: atomic under the GIL, no lock on the hot path.
        self._running = RunningHandler(
            time.monotonic(), event.id, event.type, f"{meta.topic}:{meta.partition}@{meta.offset}"
        )
        try:
            self.registry.handle(batch, event, meta)
        finally:
            self._running = None

    def running(self) -> RunningHandler | None:
        """The handler call in progress, if any."""
        return self._running
