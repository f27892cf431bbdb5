"""HandlerWatch: knows which message a handler is running for, and since when.

Python cannot interrupt a thread, so a handler that hangs holds the consumer thread; the watch
makes that visible: the supervisor reads `running()` and reports the consumer `stuck` once a
handler outlives KAFKA_HANDLER_TIMEOUT_SECONDS (and never starts a second consumer beside it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from servicescheduler.consumers.decoding.contracts import TopicContract
from servicescheduler.consumers.decoding.events import Event
from servicescheduler.consumers.decoding.wire import PlainEvent
from servicescheduler.consumers.storing.handlers import BatchWriter, HandlerRegistry, MessageMeta


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
        self._running: tuple[float, Event | PlainEvent, MessageMeta] | None = None

    def stores_only(self, event_type: str) -> bool:
        """See HandlerRegistry.stores_only (no handler code runs for such events)."""
        return self.registry.stores_only(event_type)

    def handle(self, batch: BatchWriter, event: Event, meta: MessageMeta) -> None:
        """Runs the registry's handler chain, recording the call while it lasts."""
        # One reference assignment each way: atomic under the GIL, no lock on the hot path; the
        # description is built only when someone asks (running()).
        self._running = (time.monotonic(), event, meta)
        try:
            self.registry.handle(batch, event, meta)
        finally:
            self._running = None

    def handle_topic(
        self, batch: BatchWriter, contract: TopicContract, event: Event | PlainEvent, payload: Any, meta: MessageMeta
    ) -> None:
        """Runs a declared topic's handler (HandlerRegistry.handle_topic), recorded the same way."""
        self._running = (time.monotonic(), event, meta)
        try:
            self.registry.handle_topic(batch, contract, event, payload, meta)
        finally:
            self._running = None

    def running(self) -> RunningHandler | None:
        """The handler call in progress, if any."""
        running = self._running
        if running is None:
            return None
        since, event, meta = running
        return RunningHandler(since, event.id, event.type, f"{meta.topic}:{meta.partition}@{meta.offset}")
