"""CommitOnRevoke: the consumer's rebalance listener, for several replicas in one group.

Kafka moves partitions between replicas when one joins, leaves or dies. Before a partition is
taken away, the offsets of what this replica already stored are committed, so the new owner
resumes right after them instead of replaying (the store would deduplicate a replay, but a
rebalance should not cost a batch of duplicate work). Called on the `kafka-consumer` thread from
inside poll(), the only thread that touches the consumer.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from kafka import ConsumerRebalanceListener
from kafka.structs import TopicPartition

from servicescheduler.logs import get_logger

log = get_logger(__name__)


def names(partitions: Collection[TopicPartition]) -> list[str]:
    """`topic:partition` names, sorted."""
    return sorted(f"{tp.topic}:{tp.partition}" for tp in partitions)


class CommitOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits stored offsets of revoked partitions; logs every assignment change."""

    def __init__(
        self, commit_revoked: Callable[[set[TopicPartition]], None], assigned: Callable[[list[str]], None]
    ) -> None:
        self._commit_revoked = commit_revoked
        self._assigned = assigned

    def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        """Before a rebalance takes partitions away: commit what was stored from them."""
        log.info("consumer_partitions_revoked", partitions=names(revoked))
        try:
            self._commit_revoked(set(revoked))
        except Exception as exc:  # the new owner replays from the last commit; the store deduplicates
            log.warning(
                "consumer_revoke_commit_failed", partitions=names(revoked), error=f"{type(exc).__name__}: {exc}"
            )

    def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        """After a rebalance: consumption resumes from each partition's committed offset."""
        log.info("consumer_partitions_assigned", partitions=names(assigned))
        self._assigned(names(assigned))
