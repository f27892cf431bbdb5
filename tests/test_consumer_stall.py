"""A consumer that is alive and behind but consumes nothing is `stalled`, not `running`.

The fault is a hung broker (the Tansu process stopped with SIGSTOP): connections stay open,
nothing answers, and the worker's thread keeps polling and looks healthy. Before the stall watch
the consumer said `running` and /ready said 200 for as long as it lasted.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from servicescheduler.consumers.storing.handlers import handlers
from servicescheduler.scheduling.registry import TaskRegistry
from servicescheduler.storage.models import Event
from tests.conftest import wait_until

pytestmark = pytest.mark.kafka

BACKLOG = 6000  # ~1.5 KB each: 9 MB, more than the client fetches ahead (2 MiB per partition and fetch)


@pytest.mark.slow  # over 8 s (--durations)
@pytest.mark.timeout(180)
def test_a_hung_broker_with_a_backlog_makes_the_consumer_stalled_and_not_ready_until_it_answers(
    live_app, kafka, kafka_settings, kafka_producer, monkeypatch
) -> None:
    topic = kafka.create_topic(partitions=1)
    gate, entered = threading.Event(), threading.Event()

    def held(batch, event, meta) -> None:  # holds the first batch until the broker is hung
        entered.set()
        assert gate.wait(60), "test never opened the gate"

    monkeypatch.setitem(handlers._handlers, "test.gate", (held, True))
    padding = "x" * 1500
    kafka_producer.send(
        topic,
        [{"id": "gate", "type": "test.gate"}]
        + [{"id": f"e{i}", "type": "order.created", "data": {"pad": padding}} for i in range(BACKLOG)],
    )
    app = live_app(kafka_settings(kafka_topics=topic, kafka_stall_seconds=2, kafka_batch_size=200), TaskRegistry())

    def stored() -> int:
        with app.application.database.read_session() as session:
            return int(session.scalar(select(func.count()).select_from(Event)) or 0)

    assert entered.wait(60), "the consumer never reached the first event"
    try:
        with kafka.broker.hung():
            gate.set()  # the worker stores what it fetched, then polls a broker that does not answer
            status = wait_until(
                lambda: (body := app.client.get("/consumer").json())["state"] == "stalled" and body, timeout=30
            )
            assert "messages behind" in status["detail"] and status["detail"].startswith("nothing consumed for")
            before = stored()
            assert 0 < before < BACKLOG + 1  # some was fetched before the hang, not all of it
            ready = app.client.get("/ready")
            assert ready.status_code == 503 and "consumer stalled" in ready.text
            assert "\nconsumer_running 0.0" in app.client.get("/metrics").text
    finally:
        gate.set()
    # The broker answers again: the same worker goes on, no restart needed, nothing lost or doubled.
    wait_until(lambda: stored() == BACKLOG + 1, timeout=90, interval=0.2)
    body = wait_until(lambda: (b := app.client.get("/consumer").json())["state"] == "running" and b, timeout=30)
    assert body["restarts"] == 0
    assert wait_until(lambda: app.client.get("/ready").status_code == 200, timeout=30)
