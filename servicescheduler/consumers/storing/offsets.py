"""PendingOffsets: offsets of stored batches, waiting to be committed to Kafka.

A batch's offsets become pending once its transaction committed, and leave once Kafka accepted
them; a commit that fails keeps them for the next try, unless the partition was rebalanced away
(its new owner replays from the last commit, and the store deduplicates). Only the consumer
thread touches it, as only it touches the Kafka client.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition

from servicescheduler.logs import get_logger

log = get_logger(__name__)


class PendingOffsets:
    """Stored-but-uncommitted offsets per partition, and their commits."""

    def __init__(self, timeout_ms: Callable[[], int], on_error: Callable[[str], None]) -> None:
        self._timeout_ms = timeout_ms
        self._on_error = on_error  # a commit failure worth showing in the status
        self.offsets: dict[TopicPartition, OffsetAndMetadata] = {}

    def add(self, records: dict[TopicPartition, list[Any]]) -> None:
        """A stored batch: each partition resumes after its last record."""
        self.offsets.update({tp: OffsetAndMetadata(msgs[-1].offset + 1, "", -1) for tp, msgs in records.items()})

    def commit(self, consumer: Any) -> bool:
        """Commits what is pending; returns True when nothing is left pending."""
        if not self.offsets:
            return True
        offsets = dict(self.offsets)
        try:
            consumer.commit(offsets, timeout_ms=self._timeout_ms())
        except CommitFailedError as exc:  # rebalanced away: the new owner replays, deduplicated
            self.offsets.clear()
            log.warning("consumer_commit_failed", error=str(exc), offsets=describe(offsets), retry=False)
            return False
        except KafkaError as exc:
            self._on_error(f"commit: {exc}")
            log.warning("consumer_commit_failed", error=str(exc), offsets=describe(offsets), retry=True)
            return False
        for tp, offset in offsets.items():
            if self.offsets.get(tp) == offset:
                del self.offsets[tp]
        return True

    def commit_revoked(self, consumer: Any, revoked: set[TopicPartition]) -> None:
        """Commits the pending offsets of partitions about to be revoked (raises if it fails)."""
        offsets = {tp: meta for tp, meta in self.offsets.items() if tp in revoked}
        if consumer is None or not offsets:
            return
        consumer.commit(offsets, timeout_ms=self._timeout_ms())
        for tp in offsets:
            self.offsets.pop(tp, None)
        log.info("consumer_revoked_offsets_committed", offsets=describe(offsets))


def describe(offsets: dict[TopicPartition, OffsetAndMetadata]) -> dict[str, int]:
    """`topic:partition` → offset, for log lines."""
    return {f"{tp.topic}:{tp.partition}": meta.offset for tp, meta in offsets.items()}
