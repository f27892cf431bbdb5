"""The consumer's rebalance listener (pure logic around the worker's pending offsets): before a
rebalance takes partitions away, what was stored from them and not yet committed is committed."""

from __future__ import annotations

from typing import Any

from kafka.structs import OffsetAndMetadata, TopicPartition

from consumers.rebalance import CommitOnRevoke
from consumers.worker import ConsumerWorker


class RecordingConsumer:
    """Stands in for KafkaConsumer.commit only: records what is committed."""

    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, OffsetAndMetadata]] = []

    def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata], timeout_ms: int) -> None:
        self.commits.append(dict(offsets))


def test_revoked_partitions_commit_their_stored_offsets_and_keep_the_others_pending(make_settings) -> None:
    worker = ConsumerWorker(settings=make_settings(), database=None)
    consumer: Any = RecordingConsumer()
    worker._consumer = consumer
    moving, staying = TopicPartition("events", 0), TopicPartition("events", 1)
    worker._pending = {moving: OffsetAndMetadata(42, "", -1), staying: OffsetAndMetadata(7, "", -1)}
    assigned: list[list[str]] = []
    listener = CommitOnRevoke(worker._commit_revoked, assigned.append)

    listener.on_partitions_revoked({moving})
    assert consumer.commits == [{moving: OffsetAndMetadata(42, "", -1)}]
    assert worker._pending == {staying: OffsetAndMetadata(7, "", -1)}
    listener.on_partitions_revoked({moving})  # nothing left to commit for it
    assert len(consumer.commits) == 1
    listener.on_partitions_assigned({staying, TopicPartition("events", 2)})
    assert assigned == [["events:1", "events:2"]]


def test_a_failing_revoke_commit_is_logged_not_raised_into_poll(make_settings, capsys) -> None:
    def broken(_: set[TopicPartition]) -> None:
        raise RuntimeError("coordinator moved")

    CommitOnRevoke(broken, lambda _: None).on_partitions_revoked({TopicPartition("events", 3)})
    assert "consumer_revoke_commit_failed" in capsys.readouterr().out
