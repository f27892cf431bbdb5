"""kafka-python 3.x client construction and the few client facts the worker needs.

Everything here is called from the worker thread only: kafka-python clients are not thread-safe.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer
from kafka.net.compat import KafkaNetClient
from kafka.structs import TopicPartition

from servicescheduler.consumers.clients.batches import guard
from servicescheduler.settings import Settings


def bootstrap_timeout_ms(settings: Settings) -> int:
    """How long a client constructor may block bootstrapping.

    kafka-python 3.x bootstraps synchronously in the constructor and raises KafkaTimeoutError
    when no broker answers; bounding it by the stop timeout keeps a disable/shutdown during an
    outage within its bound (the constructor cannot be interrupted).
    """
    return int(min(settings.kafka_request_timeout_ms, settings.kafka_stop_timeout_seconds * 1000))


def _common(settings: Settings) -> dict[str, Any]:
    """Connection and security options shared by the consumer and the DLQ producer."""
    options: dict[str, Any] = {
        "bootstrap_servers": [s.strip() for s in (settings.kafka_bootstrap_servers or "").split(",") if s.strip()],
        "request_timeout_ms": settings.kafka_request_timeout_ms,
        "bootstrap_timeout_ms": bootstrap_timeout_ms(settings),
        # Reconnect attempts during an outage: start fast, never wait longer than 2 s, so a
        # recovered broker is noticed quickly.
        "reconnect_backoff_max_ms": 2000,
        "security_protocol": settings.kafka_security_protocol,
        "client_id": "service-scheduler",
    }
    if settings.kafka_sasl_mechanism:
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        if settings.kafka_sasl_password is not None:
            options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    if settings.kafka_ssl_cafile:
        options["ssl_cafile"] = settings.kafka_ssl_cafile
    return options


def _closing_on_failure(build: Callable[..., Any], **options: Any) -> Any:
    """Calls a client constructor; if it raises, closes the network client it had created.

    kafka-python 3.0.12 starts its IO thread before bootstrapping and does not stop it when the
    constructor raises: without this every failed start (broker down) leaks a thread and sockets.
    """
    created: list[KafkaNetClient] = []

    def tracking_client(**kwargs: Any) -> KafkaNetClient:
        created.append(KafkaNetClient(**kwargs))
        return created[-1]

    try:
        return build(kafka_client=tracking_client, **options)
    except BaseException:
        for net_client in created:
            with contextlib.suppress(Exception):  # already failing; the original error is the one to report
                net_client.close()
        raise


def build_consumer(settings: Settings, listener: ConsumerRebalanceListener | None = None) -> Any:
    """A KafkaConsumer subscribed to the configured topics; manual commits; blocks to bootstrap.

    With KAFKA_CLIENT=confluent-kafka: a ConfluentConsumer answering the same calls (it takes no
    rebalance listener: offsets are committed after every stored batch either way).
    """
    if settings.kafka_client == "confluent-kafka":
        from servicescheduler.consumers.clients.confluent import ConfluentConsumer

        return ConfluentConsumer(settings)
    consumer = _closing_on_failure(
        KafkaConsumer,
        group_id=settings.kafka_group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",  # a new group must not skip what was produced before it
        max_poll_records=settings.kafka_batch_size,
        max_poll_interval_ms=settings.kafka_max_poll_interval_ms,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        # Oversize messages must reach us to be dead-lettered, not stall the partition.
        max_partition_fetch_bytes=max(1_048_576, settings.kafka_max_message_bytes * 2),
        # A fetch returns early once data arrives on real Kafka, but a quiet partition (or a broker
        # that waits out the full time) holds it this long: the floor of the event latency.
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        # Records of aborted transactions are skipped (KAFKA_ISOLATION_LEVEL, read_committed by default).
        isolation_level=settings.kafka_isolation_level,
        **_common(settings),
    )
    guard(consumer)  # a batch it cannot decode becomes one dead letter instead of stalling its partition
    consumer.subscribe(settings.topics, listener=listener)
    return consumer


def build_producer(settings: Settings) -> KafkaProducer:
    """A KafkaProducer for the dead-letter topic (raw bytes in, error in headers)."""
    return _closing_on_failure(
        KafkaProducer,
        acks="all",
        linger_ms=5,
        max_request_size=max(1_048_576, settings.kafka_max_message_bytes * 2),
        **_common(settings),
    )


def broker_connected(consumer: Any) -> bool:
    """True when the client holds at least one live broker connection.

    kafka-python 3.x raises nothing from poll() when the broker goes away (it logs, returns
    empty batches and reconnects), so reachability is read from the connection table.
    """
    own = getattr(consumer, "connected", None)  # ConfluentConsumer keeps it from librdkafka's stats
    if isinstance(own, bool):
        return own
    manager = getattr(consumer._client, "_manager", None)  # noqa: SLF001 (no public API)
    conns = list(getattr(manager, "_conns", {}).values())
    return any(getattr(conn, "connected", False) for conn in conns)


def partition_lag(consumer: Any) -> dict[str, int | None]:
    """Messages behind the partition end per assigned partition ("topic:partition"), None if unknown."""
    lag: dict[str, int | None] = {}
    for tp in sorted(consumer.assignment(), key=lambda t: (t.topic, t.partition)):
        lag[f"{tp.topic}:{tp.partition}"] = _lag_of(consumer, tp)
    return lag


def _lag_of(consumer: Any, tp: TopicPartition) -> int | None:
    try:
        highwater: int | None = consumer.highwater(tp)
        position: int | None = consumer.position(tp, timeout_ms=0)  # 0: never block on a network round trip
    except Exception:  # partition revoked between assignment() and here
        return None
    if highwater is None or position is None:
        return None
    return max(0, highwater - position)
