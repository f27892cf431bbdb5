"""kill -9 at a random moment, restart, repeat: no run that started is ever lost, and no event.

See tests/crashing/loop.py for the loop and what it checks after every kill.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.crashing.loop import STARTUP_TIMEOUT_SECONDS, Server, kill9_loop, server_env
from tests.kafka_fixtures import Producer

pytestmark = pytest.mark.slow

CYCLES = 6
KAFKA_CYCLES = 5
PARTITIONS = 3  # the kafka_topic fixture's


def _nothing(server: Server) -> None:
    return None


@pytest.mark.timeout(240)
def test_kill9_loop_loses_no_run(tmp_path: Path) -> None:
    began = time.monotonic()
    tally = kill9_loop(tmp_path, server_env(tmp_path), CYCLES, _nothing, _nothing)
    print(
        f"kill9: {CYCLES} cycles, {tally.checked} runs checked, {len(tally.interrupted)} interrupted rows, "
        f"{tally.manual} manual runs, {time.monotonic() - began:.1f} s"
    )
    assert tally.interrupted, "no kill landed mid-run: the loop proved nothing about interrupted runs"


class Stream:
    """Produces uniquely numbered events from a thread until stopped."""

    def __init__(self, producer: Producer, topic: str) -> None:
        self.producer, self.topic = producer, topic
        self.produced: list[str] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kill9-stream", daemon=True)

    def start(self) -> Stream:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stop.wait(0.05):
                batch: list[dict[str, Any]] = [
                    {"id": f"k{len(self.produced) + i}", "type": "order.created", "data": {"n": i}} for i in range(10)
                ]
                self.producer.send(self.topic, batch)  # flushes: acknowledged before counted
                self.produced.extend(event["id"] for event in batch)
        except BaseException as exc:  # reported by stop(): a silent producer would prove nothing
            self.error = exc

    def stop(self) -> list[str]:
        """Stops producing; returns the ids of every acknowledged event."""
        self._stop.set()
        self._thread.join(timeout=60)
        assert not self._thread.is_alive()
        assert self.error is None, f"the producer failed: {self.error!r}"
        return self.produced


def _wait_assigned(server: Server) -> None:
    """Waits until the consumer owns every partition: killing a member while its group is still
    rebalancing can wedge the group on Tansu (a broker quirk, not what this test is about)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        body = httpx.get(f"{server.base_url}/consumer", timeout=2).json()
        if len(body.get("assigned_partitions") or []) == PARTITIONS:
            return
        time.sleep(0.1)
    raise AssertionError(f"consumer not assigned within {STARTUP_TIMEOUT_SECONDS} s: {body}")


def _stored_events(db_path: Path) -> tuple[list[str], int]:
    connection = sqlite3.connect(db_path, timeout=10)
    try:
        ids = [row[0] for row in connection.execute("SELECT id FROM ss_events")]
        return ids, connection.execute("SELECT count(*) FROM ss_dead_letters").fetchone()[0]
    finally:
        connection.close()


@pytest.mark.kafka
@pytest.mark.timeout(300)
def test_kill9_loop_with_a_stream_stores_every_event_exactly_once(
    tmp_path: Path, kafka, kafka_topic: str, kafka_group: str, kafka_producer: Producer
) -> None:
    began = time.monotonic()
    env = server_env(
        tmp_path,
        KAFKA_ENABLED="true",
        KAFKA_BOOTSTRAP_SERVERS=kafka.bootstrap,
        KAFKA_TOPICS=kafka_topic,
        KAFKA_GROUP_ID=kafka_group,
        KAFKA_SESSION_TIMEOUT_MS="6000",
        KAFKA_HEARTBEAT_INTERVAL_MS="1000",
        KAFKA_MAX_POLL_INTERVAL_MS="10000",
        KAFKA_POLL_TIMEOUT_MS="100",
        KAFKA_REQUEST_TIMEOUT_MS="5000",
        KAFKA_STOP_TIMEOUT_SECONDS="5",
        CONSUMER_BACKOFF_BASE_SECONDS="0.2",
        CONSUMER_BACKOFF_CAP_SECONDS="1",
    )
    stream = Stream(kafka_producer, kafka_topic).start()
    produced: list[str] = []

    def drain(server: Server) -> None:
        produced.extend(stream.stop())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(_stored_events(tmp_path / "kill9.db")[0]) < len(produced):
            time.sleep(0.2)

    try:
        tally = kill9_loop(tmp_path, env, KAFKA_CYCLES, _wait_assigned, drain)
    finally:
        stream.stop()
    stored, dead = _stored_events(tmp_path / "kill9.db")
    assert len(stored) == len(set(stored))  # exactly once
    assert set(stored) == set(produced), f"{len(set(produced) - set(stored))} of {len(produced)} events lost"
    assert dead == 0
    print(
        f"kill9+kafka: {KAFKA_CYCLES} cycles, {len(produced)} events stored once, {tally.checked} runs checked, "
        f"{len(tally.interrupted)} interrupted rows, {time.monotonic() - began:.1f} s"
    )
