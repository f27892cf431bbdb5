"""Three replicas in one Kafka consumer group on one PostgreSQL: partitions spread, and a replica
killed with SIGKILL mid-stream loses no event and stores none twice; its partitions move."""

from __future__ import annotations

import json
import random
import threading
import time

import pytest
from sqlalchemy import create_engine, text

from devtools.produce import sample_event
from devtools.replicas import ServerProcess, wait_ready
from tests.conftest import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.kafka]
EVENTS = 2400
RATE = 200.0  # events/s: the stream lasts 12 s, the kill lands in its middle


def _assignments(servers: list[ServerProcess]) -> dict[str, list[str]]:
    return {server.name: list(server.get("/consumer").get("assigned_partitions") or []) for server in servers}


def _settled(servers: list[ServerProcess], partitions: int) -> bool:
    owned = [p for assigned in _assignments(servers).values() for p in assigned]
    return len(owned) == partitions and len(set(owned)) == partitions and all(_assignments(servers).values())


def _stream(producer, topic: str, sent: list[str]) -> None:
    rng = random.Random(9)
    started = time.monotonic()
    for index in range(EVENTS):
        event = {**sample_event(rng, notify=False), "id": f"kill-{index:05d}"}
        producer.client.send(topic, value=json.dumps(event).encode(), key=event["id"].encode())
        sent.append(event["id"])
        delay = started + (index + 1) / RATE - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # paces the stream at RATE (not a synchronisation)
    producer.client.flush(timeout=30)


def _stored_ids(database_url: str) -> list[str]:
    """Every event id in the shared database, once all EVENTS are there (bounded wait)."""
    engine = create_engine(database_url)
    try:

        def stored() -> bool:
            with engine.connect() as connection:
                return connection.execute(text("SELECT count(*) FROM ss_events")).scalar_one() >= EVENTS

        wait_until(stored, timeout=40, interval=0.5)
        with engine.connect() as connection:
            return [row[0] for row in connection.execute(text("SELECT id FROM ss_events"))]
    finally:
        engine.dispose()


def _listed_partitions(server: ServerProcess) -> list[str]:
    """Partitions the live replicas publish in GET /cluster."""
    return sorted(
        p for replica in server.get("/cluster")["replicas"] if replica["alive"] for p in replica["partitions"]
    )


@pytest.mark.timeout(150)
def test_kill_9_mid_stream_loses_and_duplicates_no_event(
    tmp_path, servers, cluster_database_url, kafka, kafka_group, kafka_producer
) -> None:
    topic = kafka.create_topic(partitions=6)
    env = {
        "DATABASE_URL": cluster_database_url,
        "KAFKA_ENABLED": "true",
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "KAFKA_TOPICS": topic,
        "KAFKA_GROUP_ID": kafka_group,
        "KAFKA_SESSION_TIMEOUT_MS": "6000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
        "KAFKA_POLL_TIMEOUT_MS": "100",
        "CLUSTER_REPLICA_TTL_SECONDS": "3",
    }
    servers.extend(ServerProcess(tmp_path, f"replica-{index}", env) for index in range(3))
    wait_ready(servers)
    wait_until(lambda: _settled(servers, 6), timeout=60, interval=0.5)  # let the group settle first
    sent: list[str] = []
    stream = threading.Thread(target=_stream, args=(kafka_producer, topic, sent), daemon=True)
    stream.start()
    wait_until(lambda: len(sent) >= EVENTS // 3, timeout=30)
    victim = max(servers, key=lambda server: len(_assignments([server])[server.name]))
    victim_id = victim.get("/cluster")["self"]
    victim.kill()
    servers.remove(victim)
    killed = time.monotonic()
    wait_until(lambda: _settled(servers, 6), timeout=40, interval=0.2)  # its partitions moved
    moved_after = time.monotonic() - killed
    stream.join(timeout=60)
    assert len(sent) == EVENTS
    assert sorted(_stored_ids(cluster_database_url)) == sorted(sent), "events lost or stored twice"
    wait_until(lambda: len(set(_listed_partitions(servers[0]))) == len(_listed_partitions(servers[0])) == 6, timeout=10)
    wait_until(
        lambda: not any(r["alive"] for r in servers[0].get("/cluster")["replicas"] if r["id"] == victim_id), timeout=10
    )
    print(f"partitions of the killed replica consuming again {moved_after:.1f} s after the kill")
