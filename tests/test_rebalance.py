"""The consumer's rebalance listener (pure logic around the worker's pending offsets): before a
rebalance takes partitions away, what was stored from them and not yet committed is committed."""

from __future__ import annotations

import threading
from typing import Any, NamedTuple

from kafka.structs import OffsetAndMetadata, TopicPartition

from servicescheduler.consumers.clients.rebalance import CommitOnRevoke
from servicescheduler.consumers.running.worker import ConsumerWorker
from servicescheduler.consumers.storing.store import StoreResult
from servicescheduler.consumers.storing.storeahead import StoreAhead


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
    worker._pending.offsets = {moving: OffsetAndMetadata(42, "", -1), staying: OffsetAndMetadata(7, "", -1)}
    assigned: list[list[str]] = []
    listener = CommitOnRevoke(worker._commit_revoked, assigned.append)

    listener.on_partitions_revoked({moving})
    assert consumer.commits == [{moving: OffsetAndMetadata(42, "", -1)}]
    assert worker._pending.offsets == {staying: OffsetAndMetadata(7, "", -1)}
    listener.on_partitions_revoked({moving})  # nothing left to commit for it
    assert len(consumer.commits) == 1
    listener.on_partitions_assigned({staying, TopicPartition("events", 2)})
    assert assigned == [["events:1", "events:2"]]


class Record(NamedTuple):
    offset: int


def test_a_revoke_waits_for_the_batch_being_stored_and_commits_it_too(make_settings) -> None:
    gate = threading.Event()

    def slow_store(prepared: list[Any], dead: list[Any]) -> StoreResult:
        assert gate.wait(10), "the store was never released"
        return StoreResult(events_stored=len(prepared))

    worker = ConsumerWorker(settings=make_settings(), database=None)
    consumer: Any = RecordingConsumer()
    worker._consumer = consumer
    worker._ahead = StoreAhead(slow_store)
    moving = TopicPartition("events", 0)
    worker._ahead.submit({moving: [Record(10), Record(11)]}, [], [])
    threading.Timer(0.2, gate.set).start()  # the listener must wait for it, however long it takes

    CommitOnRevoke(worker._commit_revoked, lambda _: None).on_partitions_revoked({moving})
    assert gate.is_set()
    assert consumer.commits == [{moving: OffsetAndMetadata(12, "", -1)}]
    assert not worker._ahead.busy and not worker._pending.offsets
    worker._ahead.close()


def test_a_failing_revoke_commit_is_logged_not_raised_into_poll(make_settings, capsys) -> None:
    def broken(_: set[TopicPartition]) -> None:
        raise RuntimeError("coordinator moved")

    CommitOnRevoke(broken, lambda _: None).on_partitions_revoked({TopicPartition("events", 3)})
    assert "consumer_revoke_commit_failed" in capsys.readouterr().out
