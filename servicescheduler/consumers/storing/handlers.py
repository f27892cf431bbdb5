"""Event handlers by `type`, with a catch-all default.

A handler is `handler(batch, event, meta) -> None`. It does not write to the database itself: it
adds rows to `batch` (a per-message buffer; `batch.session` is the batch's open session, for
reads). The store inserts every buffered row of the batch in ONE transaction; a handler that
raises has its buffer discarded, so a failed message leaves nothing half-written.

Adding a handler is one declaration::

    @handlers.register("order.created")
    def on_order(batch, event, meta):
        batch.add(Invoice(...))

By default the event row (and its pending notification) is stored before a registered handler
runs (`store_event=True`); pass `store_event=False` to take over completely.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from servicescheduler.consumers.decoding.events import Event
from servicescheduler.consumers.decoding.wire import PlainEvent
from servicescheduler.support.clock import iso

if TYPE_CHECKING:
    from servicescheduler.consumers.decoding.contracts import TopicContract

Handler = Callable[["BatchWriter", Event, "MessageMeta"], None]


class MessageMeta(msgspec.Struct, frozen=True, gc=False):
    """Where a message came from (a frozen msgspec Struct: built once per message on the hot
    path, in C; a frozen dataclass cost 4x as much; untracked by the cyclic collector, see
    decoding/wire.py's _Wire)."""

    topic: str
    partition: int
    offset: int
    key: str | None
    received_at: datetime
    # W3C context of the message's `process` span (set only while tracing): its notification keeps it.
    traceparent: str | None = None


@dataclass
class BatchWriter:
    """Rows one message wants written; kept only if its handler returns normally."""

    session: Any
    events: list[dict[str, Any]] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    rows: list[Any] = field(default_factory=list)

    def add_event(self, event: Event | PlainEvent, meta: MessageMeta) -> None:
        """Buffers the `events` row (inserted idempotently on the event id)."""
        self.events.append(
            {
                "id": event.id,
                "type": event.type,
                "occurred_at": event.occurred_at,
                "received_at": meta.received_at,
                "data": event.data,
                "key": meta.key,
                "topic": meta.topic,
                "partition": meta.partition,
                "offset": meta.offset,
            }
        )

    def add_notification(self, event: Event, meta: MessageMeta, *, channel: str, recipient: str) -> None:
        """Buffers a pending `notifications` row for the event (one per event id)."""
        self.notifications.append(
            {
                "event_id": event.id,
                "channel": channel,
                "recipient": recipient,
                "payload": {
                    "event_id": event.id,
                    "type": event.type,
                    "data": event.data,
                    "occurred_at": iso(event.occurred_at),
                },
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": meta.received_at,
                "created_at": meta.received_at,
                "updated_at": meta.received_at,
                "trace_parent": meta.traceparent,
            }
        )

    def add(self, row: Any) -> None:
        """Buffers any ORM object. Written only with the first delivery of the event when the
        event is stored too (the default); with store_event=False make it idempotent yourself."""
        self.rows.append(row)


def store_event(batch: BatchWriter, event: Event, meta: MessageMeta) -> None:
    """The default handler: stores the event and, when `notify` is set, a pending notification."""
    batch.add_event(event, meta)
    if event.notify is not None:
        batch.add_notification(event, meta, channel=event.notify.channel, recipient=event.notify.recipient)


class HandlerRegistry:
    """Maps event types to handlers; unknown types go to the default handler."""

    def __init__(self, default: Handler = store_event) -> None:
        self.default = default
        self._handlers: dict[str, tuple[Handler, bool]] = {}

    def register(self, event_type: str, *, store_event: bool = True) -> Callable[[Handler], Handler]:
        """Decorator: `handler` handles `event_type` (after the default storing unless told not to)."""

        def decorate(handler: Handler) -> Handler:
            if event_type in self._handlers:
                raise ValueError(f"a handler for {event_type!r} is already registered")
            self._handlers[event_type] = (handler, store_event)
            return handler

        return decorate

    def stores_only(self, event_type: str) -> bool:
        """True when `event_type` gets the stock storing only (no handler of its own, stock default):
        the store then builds the rows itself, without a per-message buffer."""
        return self.default is store_event and event_type not in self._handlers

    def handle(self, batch: BatchWriter, event: Event, meta: MessageMeta) -> None:
        """Runs the handler chain for `event` against `batch`; exceptions propagate."""
        registered = self._handlers.get(event.type)
        if registered is None:
            self.default(batch, event, meta)
            return
        handler, with_default = registered
        if with_default:
            self.default(batch, event, meta)
        handler(batch, event, meta)

    def handle_topic(
        self, batch: BatchWriter, contract: TopicContract, event: Event | PlainEvent, payload: Any, meta: MessageMeta
    ) -> None:
        """Runs a declared topic's handler with its payload, after storing the event unless the
        contract says `store_event=False`; exceptions propagate."""
        if contract.store_event:
            if isinstance(payload, Event):  # an envelope topic: notify creates its notification
                self.default(batch, payload, meta)
            else:
                batch.add_event(event, meta)
        if contract.handler is not None:
            contract.handler(batch, payload, meta)

    def types(self) -> list[str]:
        """Event types with a specific handler."""
        return sorted(self._handlers)

    def update(self, other: HandlerRegistry) -> None:
        """Adds every handler of `other`; raises ValueError when a type has a handler in both."""
        for event_type, (handler, with_default) in other._handlers.items():
            self.register(event_type, store_event=with_default)(handler)


# The module-level registry: modules named by TASK_MODULES register on it (`from servicescheduler import
# handlers`), and the reference service serves it.
handlers = HandlerRegistry()
register = handlers.register
