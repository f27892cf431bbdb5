"""Benchmark 7's FastStream peer is an honest opponent: on a real broker, with both of its
backends, it stores exactly the good events, dead-letters exactly the malformed ones, creates one
notification per event with `notify`, and a second run over the same topic (a redelivery) adds
nothing."""

from __future__ import annotations

import pytest

from bench.pipeline.events import make_notify_event
from bench.pipeline.faststream_peer import run_peer

pytest.importorskip("faststream.kafka")

COUNT = 300  # 3 malformed (every 100th), 15 with notify (every 20th)


@pytest.mark.parametrize("client", ["aiokafka", "confluent"])
def test_the_peer_stores_exactly_once_and_dead_letters_bad_messages(
    client, kafka, kafka_topic, kafka_producer, tmp_path
):
    kafka_producer.send(kafka_topic, [make_notify_event(i, i % 100 == 99) for i in range(COUNT)])
    url = f"sqlite:///{tmp_path / 'peer.db'}"
    first = run_peer(client, kafka.bootstrap, kafka_topic, url, COUNT, timeout=60, session_ms=2000, heartbeat_ms=500)
    again = run_peer(client, kafka.bootstrap, kafka_topic, url, COUNT, timeout=60, session_ms=2000, heartbeat_ms=500)
    for run in (first, again):
        assert run["events"] == COUNT
        assert (run["stored"], run["dead_lettered"], run["notifications"]) == (297, 3, 15)
