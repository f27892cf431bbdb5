"""The confluent-kafka (librdkafka) consumer behind the kafka-python surface the worker uses.

`KAFKA_CLIENT=confluent-kafka` (install `requirements-confluent.txt`): same worker, same
at-least-once order (store, then commit the stored offsets synchronously), same supervisor and
status fields, and a batch it cannot decode is one dead letter as with kafka-python.
Differences: the constructor does not wait for a broker (an outage shows as `broker_reachable:
false` and readiness, not as restarts), and the dead-letter topic producer stays kafka-python's.
Used from the worker thread only, like the kafka-python client.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import msgspec
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition

from servicescheduler.consumers.clients.batches import UndecodableBatch
from servicescheduler.logs import get_logger
from servicescheduler.settings import Settings

log = get_logger(__name__)


class Record(msgspec.Struct, frozen=True):
    """The fields of a kafka-python ConsumerRecord the worker reads (a Struct: built in C, once
    per consumed message)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    # [(name, value)], as librdkafka gives them: declared topics read them (CloudEvents, decoders),
    # and the trace context travels here (`traceparent`).
    headers: Any = None


@dataclass
class _Skip:
    """An undecodable batch being stepped past: where it starts, the position tried, why."""

    first_offset: int
    position: int
    reason: str


def _config(settings: Settings, on_error: Any, on_stats: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap_servers or "",
        "group.id": settings.kafka_group_id,
        "client.id": "service-scheduler",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",  # a new group must not skip what was produced before it
        "session.timeout.ms": settings.kafka_session_timeout_ms,
        "heartbeat.interval.ms": settings.kafka_heartbeat_interval_ms,
        "max.poll.interval.ms": settings.kafka_max_poll_interval_ms,
        "fetch.wait.max.ms": settings.kafka_fetch_max_wait_ms,
        # Records of aborted transactions are skipped (KAFKA_ISOLATION_LEVEL, read_committed by default).
        "isolation.level": settings.kafka_isolation_level,
        # Oversize messages must reach us to be dead-lettered, not stall the partition.
        "max.partition.fetch.bytes": max(1_048_576, settings.kafka_max_message_bytes * 2),
        "reconnect.backoff.max.ms": 2000,
        "security.protocol": settings.kafka_security_protocol,
        "statistics.interval.ms": 1000,  # broker states, for `broker_reachable`
        "error_cb": on_error,
        "stats_cb": on_stats,
    }
    if settings.kafka_sasl_mechanism:
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism
        config["sasl.username"] = settings.kafka_sasl_username or ""
        if settings.kafka_sasl_password is not None:
            config["sasl.password"] = settings.kafka_sasl_password.get_secret_value()
    if settings.kafka_ssl_cafile:
        config["ssl.ca.location"] = settings.kafka_ssl_cafile
    return config


class ConfluentConsumer:
    """A subscribed confluent_kafka.Consumer answering like kafka-python's KafkaConsumer."""

    def __init__(self, settings: Settings) -> None:
        import confluent_kafka

        self._ck = confluent_kafka
        self.connected = False
        self._paused: set[TopicPartition] = set()
        self._skipping: dict[tuple[str, int], _Skip] = {}  # partitions stepping past an undecodable batch
        self._consumer = confluent_kafka.Consumer(_config(settings, self._on_error, self._on_stats))
        self._consumer.subscribe(settings.topics)

    def _on_error(self, error: Any) -> None:
        if error.code() in (self._ck.KafkaError._ALL_BROKERS_DOWN, self._ck.KafkaError._TRANSPORT):
            self.connected = False
        log.warning("consumer_client_error", client="confluent-kafka", error=str(error)[:300])

    def _on_stats(self, stats: str) -> None:
        brokers = json.loads(stats).get("brokers", {}).values()
        self.connected = any(b.get("state") == "UP" and b.get("nodeid", -1) >= 0 for b in brokers)

    def _tp(self, tp: TopicPartition, offset: int = -1001) -> Any:
        return self._ck.TopicPartition(tp.topic, tp.partition, offset)

    def poll(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Record | UndecodableBatch]]:
        """Up to `max_records` messages by partition (offset order), waiting up to `timeout_ms`.

        A batch librdkafka cannot decode comes out as one UndecodableBatch (see _skip_undecodable).
        """
        # Grouped by a plain (topic, partition) tuple: a TopicPartition per message was 40 % of
        # this loop, which runs once per consumed message.
        groups: dict[tuple[Any, Any], list[Record | UndecodableBatch]] = {}  # (topic, partition): never None
        undecodable = (self._ck.KafkaError._BAD_MSG, self._ck.KafkaError._BAD_COMPRESSION)
        for message in self._consumer.consume(num_messages=max_records, timeout=timeout_ms / 1000):
            error = message.error()
            where: tuple[Any, Any] = (message.topic(), message.partition())
            if error is not None:
                offset = message.offset()
                if error.code() in undecodable and where[0] is not None and offset is not None and offset >= 0:
                    ended = self._skip_undecodable(where, offset, f"{error.name()}: {error.str()}")
                    if ended is not None:
                        groups.setdefault(where, []).append(ended)
                elif error.code() != self._ck.KafkaError._PARTITION_EOF:
                    log.warning("consumer_fetch_error", client="confluent-kafka", error=str(error)[:300])
                continue
            bucket = groups.get(where)
            if bucket is None:
                bucket = groups[where] = []
            if self._skipping:
                skipped = self._skipped_before(where, message.offset() or 0)
                if skipped is not None:
                    bucket.append(skipped)
            bucket.append(
                Record(
                    where[0],
                    where[1],
                    message.offset() or 0,
                    message.timestamp()[1],
                    message.key(),
                    message.value(),
                    message.headers(),
                )
            )
        for where in list(self._skipping):
            ended = self._skipped_to_end(where)
            if ended is not None:
                groups.setdefault(where, []).append(ended)
        return {TopicPartition(topic, partition): records for (topic, partition), records in groups.items()}

    def _skip_undecodable(self, where: tuple[str, int], offset: int, reason: str) -> UndecodableBatch | None:
        """Steps past a batch librdkafka cannot decode; returns the previous bad batch if this one ends it.

        librdkafka reports the batch's base offset and fetches the same batch again forever (it
        does not know the codec or the batch is corrupt for good), and the error does not say
        where the batch ends. So the position moves one offset at a time until a record past the
        batch arrives (`_skipped_before`): a few fetch round trips per record of a bad batch,
        and the batch becomes ONE dead letter. Skipping further at once could skip good records.
        """
        ended: UndecodableBatch | None = None
        skip = self._skipping.get(where)
        if skip is None or skip.first_offset != offset:
            if skip is not None and offset > skip.first_offset:  # a second bad batch right after the first
                ended = UndecodableBatch(where[0], where[1], skip.first_offset, offset - 1, skip.reason)
            log.error(
                "consumer_batch_undecodable",
                client="confluent-kafka",
                topic=where[0],
                partition=where[1],
                offset=offset,
                reason=reason[:500],
                hint="dead-lettered as one entry once the batch's end is found",
            )
            skip = self._skipping[where] = _Skip(offset, offset, reason)
        skip.position += 1
        try:
            self._consumer.seek(self._ck.TopicPartition(where[0], where[1], skip.position))
        except self._ck.KafkaException as exc:  # partition revoked meanwhile: its new owner meets the batch
            self._skipping.pop(where, None)
            log.warning("consumer_skip_failed", client="confluent-kafka", error=str(exc)[:300])
        return ended

    def _skipped_to_end(self, where: tuple[str, int]) -> UndecodableBatch | None:
        """The bad batch being skipped, if the position passed the end of the partition's log.

        The last batch of a partition is followed by no record that would show where it ends;
        the high watermark (of the fetch that brought the batch, so at least its end) does.
        """
        skip = self._skipping[where]
        try:
            _, high = self._consumer.get_watermark_offsets(self._ck.TopicPartition(*where), cached=True)
        except self._ck.KafkaException:  # partition no longer ours
            return None
        if high is None or high < 0 or skip.position < high:
            return None
        del self._skipping[where]
        return UndecodableBatch(where[0], where[1], skip.first_offset, high - 1, skip.reason)

    def _skipped_before(self, where: tuple[str, int], offset: int) -> UndecodableBatch | None:
        """The bad batch that a record at `offset` shows has ended, if one was being skipped."""
        skip = self._skipping.get(where)
        if skip is None or offset <= skip.first_offset:
            return None
        del self._skipping[where]
        return UndecodableBatch(where[0], where[1], skip.first_offset, offset - 1, skip.reason)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._skipping.pop((tp.topic, tp.partition), None)  # a rewind starts any skipping over
        self._consumer.seek(self._tp(tp, offset))

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(tp.topic, tp.partition) for tp in self._consumer.assignment()}

    def pause(self, *partitions: TopicPartition) -> None:
        if partitions:
            self._consumer.pause([self._tp(tp) for tp in partitions])
            self._paused |= set(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        if partitions:
            self._consumer.resume([self._tp(tp) for tp in partitions])
            self._paused -= set(partitions)

    def paused(self) -> set[TopicPartition]:
        return self._paused & self.assignment()  # a rebalance drops pauses with the partitions

    def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata], timeout_ms: int) -> None:
        """Synchronous commit; CommitFailedError when the group moved on (as kafka-python)."""
        try:
            self._consumer.commit(
                offsets=[self._tp(tp, meta.offset) for tp, meta in offsets.items()], asynchronous=False
            )
        except self._ck.KafkaException as exc:
            code = exc.args[0].code() if exc.args else None
            moved = (
                self._ck.KafkaError.ILLEGAL_GENERATION,
                self._ck.KafkaError.UNKNOWN_MEMBER_ID,
                self._ck.KafkaError.REBALANCE_IN_PROGRESS,
            )
            if code in moved:
                raise CommitFailedError(str(exc)) from None
            raise KafkaError(str(exc)) from None

    def highwater(self, tp: TopicPartition) -> int | None:
        _, high = self._consumer.get_watermark_offsets(self._tp(tp), cached=True)
        return high if high is not None and high >= 0 else None

    def position(self, tp: TopicPartition, timeout_ms: int = 0) -> int | None:
        [position] = self._consumer.position([self._tp(tp)])
        return position.offset if position.offset >= 0 else None

    def close(self, autocommit: bool = False, timeout_ms: int | None = None) -> None:
        """Leaves the group and closes (nothing is committed here: the worker commits itself)."""
        self._consumer.close()
