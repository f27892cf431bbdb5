"""Topic contracts: what the records of one topic are, declared like tasks.

A `TopicContract` says how a record of its topic becomes an event: its format (`json`: a JSON
value, or whatever `decoder` returns; `cloudevents`: a CloudEvent in structured or binary mode;
`envelope`: this project's own envelope), the `model` that validates the payload (a pydantic
model, `dict` or `bytes`), the idempotency `key`, `occurred_at`, the event `type`, and an
optional `handler(batch, payload, meta)`. Topics of `KAFKA_TOPICS` keep the envelope contract
and its fast path (decoding/wire.py); they cannot have a contract too (one topic, one contract).

Mistakes a declaration can show (a model that is not a model, a type no events row holds,
`store_event=False` without a handler) raise TopicDefinitionError when declared; two contracts
for one topic raise it when registries are merged (a StartupError at start-up).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from servicescheduler.settings import Settings

if TYPE_CHECKING:
    from servicescheduler.consumers.storing.handlers import BatchWriter, MessageMeta

Format = Literal["json", "cloudevents", "envelope"]
FORMATS: tuple[str, ...] = ("json", "cloudevents", "envelope")
Headers = list[tuple[str, bytes]]
# handler(batch, payload, meta): payload is the validated model (or dict/bytes, a CloudEvent, an Event).
TopicHandler = Callable[["BatchWriter", Any, "MessageMeta"], None]
Decoder = Callable[[bytes, Headers], object]
TYPE_MAX_CHARS = 128  # width of events.type
TOPIC_MAX_CHARS = 249  # Kafka's own limit, and the width of events.topic


class TopicDefinitionError(ValueError):
    """A topic contract that can never work, named with its topic."""


@dataclass(frozen=True)
class TopicContract:
    """How the records of `topic` become events (see the module docstring)."""

    topic: str
    model: type[Any] | None = None
    key: Callable[[Any], object] | None = None
    occurred_at: Callable[[Any], datetime | None] | None = None
    type: str | None = None
    handler: TopicHandler | None = None
    store_event: bool = True
    decoder: Decoder | None = None
    format: Format = "json"

    @property
    def event_type(self) -> str:
        """The events row's `type` (a CloudEvent's own `type` wins unless `type=` was given)."""
        return self.type or self.topic

    @property
    def is_model(self) -> bool:
        """True when `model` is a pydantic model (else dict, bytes or none)."""
        return isinstance(self.model, type) and issubclass(self.model, BaseModel)

    def validate(self) -> None:
        """Raises TopicDefinitionError for a contract that can never work."""
        where = f"topic {self.topic!r}"
        if not isinstance(self.topic, str) or not 0 < len(self.topic) <= TOPIC_MAX_CHARS:
            raise TopicDefinitionError(f"topic must be a name of 1-{TOPIC_MAX_CHARS} characters, got {self.topic!r}")
        if self.format not in FORMATS:
            raise TopicDefinitionError(f"{where}: format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        model = self.model
        if model is not None and not (model in (dict, bytes) or self.is_model):
            raise TopicDefinitionError(
                f"{where}: model must be a pydantic BaseModel subclass, dict or bytes, got {model!r}"
            )
        if self.type is not None and (
            not isinstance(self.type, str) or not 0 < len(self.type) <= TYPE_MAX_CHARS or "\x00" in self.type
        ):
            raise TopicDefinitionError(
                f"{where}: type must be text of 1-{TYPE_MAX_CHARS} characters, got {self.type!r}"
            )
        for name in ("key", "occurred_at", "handler", "decoder"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise TopicDefinitionError(f"{where}: {name} must be callable, got {value!r}")
        if not self.store_event and self.handler is None:
            raise TopicDefinitionError(f"{where}: store_event=False needs a handler (else nothing is kept)")
        if self.format == "envelope" and (model, self.key, self.occurred_at, self.decoder) != (None,) * 4:
            raise TopicDefinitionError(
                f"{where}: the envelope format has its own model, key and occurred_at; "
                "declare only a handler (or use format='json')"
            )
        if self.format == "envelope" and self.handler is None:
            raise TopicDefinitionError(
                f"{where}: an envelope topic without a handler of its own belongs in KAFKA_TOPICS"
            )


class TopicRegistry:
    """Topic contracts by topic name; `@registry.topic(...)` declares one."""

    def __init__(self) -> None:
        self._contracts: dict[str, TopicContract] = {}

    def topic(
        self,
        topic: str,
        *,
        model: type[Any] | None = None,
        key: Callable[[Any], object] | None = None,
        occurred_at: Callable[[Any], datetime | None] | None = None,
        type: str | None = None,  # noqa: A002 - the contract's own word
        store_event: bool = True,
        decoder: Decoder | None = None,
        format: Format = "json",  # noqa: A002
    ) -> Callable[[TopicHandler], TopicHandler]:
        """Decorator: the decorated function handles `topic`'s payloads (see TopicContract)."""

        def decorate(handler: TopicHandler) -> TopicHandler:
            self.add(TopicContract(topic, model, key, occurred_at, type, handler, store_event, decoder, format))
            return handler

        return decorate

    def add(self, contract: TopicContract) -> None:
        """Adds a contract (one without a handler stores the validated payload only)."""
        contract.validate()
        if contract.topic in self._contracts:
            raise TopicDefinitionError(f"topic {contract.topic!r} already has a contract (one topic, one contract)")
        self._contracts[contract.topic] = contract

    def update(self, other: TopicRegistry) -> None:
        """Adds every contract of `other`; TopicDefinitionError when a topic has one in both."""
        for contract in other:
            self.add(contract)

    def get(self, topic: str) -> TopicContract | None:
        """The contract of `topic`, if declared."""
        return self._contracts.get(topic)

    def names(self) -> list[str]:
        """The declared topics, in declaration order."""
        return list(self._contracts)

    def as_dict(self) -> dict[str, TopicContract]:
        """A copy of the contracts by topic (the consumer's lookup table)."""
        return dict(self._contracts)

    def __iter__(self) -> Iterator[TopicContract]:
        return iter(list(self._contracts.values()))

    def __len__(self) -> int:
        return len(self._contracts)


def check_against_envelope_topics(registry: TopicRegistry, kafka_topics: list[str]) -> None:
    """Raises TopicDefinitionError when a declared topic is also in KAFKA_TOPICS.

    A topic has one contract: KAFKA_TOPICS topics carry the envelope (and its fast path); a topic
    with a contract of its own must not be read as the envelope too, so both is an error rather
    than a silent choice. (`format="envelope"` gives an envelope topic a handler of its own.)
    """
    both = [name for name in registry.names() if name in kafka_topics]
    if both:
        raise TopicDefinitionError(
            f"topic {', '.join(repr(n) for n in both)} is in KAFKA_TOPICS (the envelope contract) and has a "
            "topic contract too: remove it from KAFKA_TOPICS (declared topics are subscribed anyway)"
        )


def subscribing(settings: Settings, declared: list[str]) -> Settings:
    """`settings` whose KAFKA_TOPICS also names the declared topics: what the clients subscribe
    to (one consumer, one group, one batch transaction for all of them)."""
    if not declared:
        return settings
    names = list(dict.fromkeys([*settings.topics, *declared]))  # once each, in order
    return settings.model_copy(update={"kafka_topics": ",".join(names)})


# The module-level registry: modules named by TASK_MODULES declare on it (`from servicescheduler
# import topics`; `@topics.topic("orders", model=Order)`), and the reference service serves it.
topics = TopicRegistry()
