"""Record batches a client cannot decode (unknown codec, corrupt batch) as ONE undecodable record.

kafka-python decompresses and checks a whole record batch while it parses a fetch. A batch it
cannot read (compressed with a codec whose library is missing, a CRC mismatch, a corrupt
compressed payload) makes `poll()` raise; the fetch position never moves past it, so a worker
that restarts on the error polls the same batch again and the partition stalls for good.

`guard(consumer)` makes the consumer's fetcher parse each batch on its own: a batch that raises
comes out as one `UndecodableBatch` in the poll result, at the batch's last offset, and the
batches after it as usual. The worker dead-letters it (one row naming topic, partition, offset
range and reason) and its commit moves past it like any other record. The confluent client turns
librdkafka's per-batch errors into the same record (clients/confluent.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kafka.consumer.fetcher import Fetcher

from servicescheduler.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class UndecodableBatch:
    """A record batch no record of which could be read; stands in for all of them in a poll result.

    `offset` is the batch's LAST offset, so the stored-offset commit resumes after the batch.
    """

    topic: str
    partition: int
    first_offset: int
    offset: int
    reason: str
    key: bytes | None = None
    value: bytes | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)

    @property
    def offsets(self) -> str:
        """The offset range as text (`12-19`, or `12` for one)."""
        if self.first_offset == self.offset:
            return str(self.offset)
        return f"{self.first_offset}-{self.offset}"


@dataclass(frozen=True)
class _Failure:
    first_offset: int
    last_offset: int
    reason: str


class _Placeholder:
    """The one 'record' a failed batch yields to kafka-python's parser (replaced before the poll returns)."""

    def __init__(self, offset: int, timestamp: int, timestamp_type: int, size: int) -> None:
        self.offset = offset
        self.timestamp = timestamp
        self.timestamp_type = timestamp_type
        self.size_in_bytes = size
        self.key: bytes | None = None
        self.value: bytes | None = None
        self.headers: list[tuple[str, bytes]] = []
        self.checksum = None

    @staticmethod
    def validate_crc() -> bool:
        return True


class _GuardedBatch:
    """One record batch whose records are read all at once when iterated; a failure yields one placeholder.

    The CRC check kafka-python does before iterating is moved in here (validate_crc answers True
    to it), so a corrupt batch is a placeholder too instead of an exception.
    """

    def __init__(self, batch: Any, check_crcs: bool, fetch_offset: int, failures: dict[int, _Failure]) -> None:
        self._batch = batch
        self._check_crcs = check_crcs
        self._fetch_offset = fetch_offset
        self._failures = failures

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)

    @staticmethod
    def validate_crc() -> bool:
        return True

    def __next__(self) -> Any:  # read_committed reads a control batch's marker record this way
        return next(self._batch)

    def __iter__(self) -> Iterator[Any]:
        batch = self._batch
        try:
            if self._check_crcs and not batch.validate_crc():
                raise ValueError(f"record batch failed its CRC check (stored crc {batch.crc})")
            records = list(batch)  # decompresses and parses the whole batch: fails here or not at all
        except Exception as exc:
            text = str(exc)  # kafka-python's errors start with their class name already
            yield self._placeholder(text if text.startswith(type(exc).__name__) else f"{type(exc).__name__}: {text}")
            return
        yield from records

    def _placeholder(self, reason: str) -> _Placeholder:
        batch = self._batch
        base = int(batch.base_offset)
        # v2 batches know their last offset from the header; a legacy wrapper's offset is its last.
        last = int(getattr(batch, "last_offset", base))
        first = min(max(base, self._fetch_offset), last)  # a fetch from inside the batch skips its head
        self._failures[last] = _Failure(first, last, reason)
        timestamp = getattr(batch, "max_timestamp", -1)
        return _Placeholder(last, timestamp, int(getattr(batch, "timestamp_type", 0) or 0), int(batch.size_in_bytes))


class _GuardedRecords:
    """The fetched bytes of one partition, handing out guarded batches."""

    def __init__(self, records: Any, check_crcs: bool, fetch_offset: int, failures: dict[int, _Failure]) -> None:
        self._records = records
        self._check_crcs = check_crcs
        self._fetch_offset = fetch_offset
        self._failures = failures

    def next_batch(self) -> _GuardedBatch | None:
        batch = self._records.next_batch()
        if batch is None:
            return None
        return _GuardedBatch(batch, self._check_crcs, self._fetch_offset, self._failures)


class GuardedPartitionRecords(Fetcher.PartitionRecords):  # type: ignore[misc]  # kafka-python is untyped
    """kafka-python's parsed fetch of one partition, where a batch that fails becomes an UndecodableBatch."""

    def _unpack_records(self, tp: Any, records: Any, key_deserializer: Any, value_deserializer: Any) -> Iterator[Any]:
        failures: dict[int, _Failure] = {}
        guarded = _GuardedRecords(records, self.check_crcs, self.fetch_offset, failures)
        for record in super()._unpack_records(tp, guarded, key_deserializer, value_deserializer):
            failure = failures.pop(record.offset, None) if failures else None
            if failure is None:
                yield record
                continue
            log.error(
                "consumer_batch_undecodable",
                topic=tp.topic,
                partition=tp.partition,
                first_offset=failure.first_offset,
                last_offset=failure.last_offset,
                reason=failure.reason[:500],
                hint="dead-lettered as one entry; install the codec library or fix the producer",
            )
            yield UndecodableBatch(tp.topic, tp.partition, failure.first_offset, failure.last_offset, failure.reason)


def guard(consumer: Any) -> None:
    """Makes a KafkaConsumer's fetcher parse batches with GuardedPartitionRecords.

    kafka-python builds each partition's parsed fetch with `self.PartitionRecords(...)`, so the
    instance attribute set here is the one hook needed (no public API exists for it).
    """
    consumer._fetcher.PartitionRecords = GuardedPartitionRecords  # noqa: SLF001
