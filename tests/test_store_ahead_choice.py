"""KAFKA_STORE_AHEAD=auto resolved per database and client, as benchmark 7 measured it (paired runs,
docs/benchmarks.md section 7): on for SQLite, on for PostgreSQL with kafka-python, off for
PostgreSQL with confluent-kafka; "on" and "off" are taken as said."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from servicescheduler.consumers.running.worker import ConsumerWorker


def _database(dialect: str) -> Any:
    """Stands in for Database: stores_ahead reads only the engine's dialect name."""
    return SimpleNamespace(engine=SimpleNamespace(dialect=SimpleNamespace(name=dialect)))


@pytest.mark.parametrize(
    ("dialect", "client", "setting", "expected"),
    [
        ("sqlite", "kafka-python", "auto", True),
        ("sqlite", "confluent-kafka", "auto", True),
        ("postgresql", "kafka-python", "auto", True),
        ("postgresql", "confluent-kafka", "auto", False),
        ("postgresql", "confluent-kafka", "on", True),
        ("sqlite", "kafka-python", "off", False),
        ("postgresql", "kafka-python", "off", False),
    ],
)
def test_auto_stores_ahead_where_it_measured_faster(make_settings, dialect, client, setting, expected) -> None:
    settings = make_settings(kafka_client=client, kafka_store_ahead=setting)
    worker = ConsumerWorker(settings=settings, database=_database(dialect))
    assert worker.stores_ahead is expected
