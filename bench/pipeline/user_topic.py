"""Benchmark 7's "user model topic" rows: a team's own topic (a pydantic model, a key function,
occurred_at from the payload) against the envelope path, in the same run, same sizes.

Both topics get `count` ~300 B JSON events carrying the same fields; the envelope topic is read
as KAFKA_TOPICS (msgspec fast path), the other through its TopicContract (pydantic validates the
JSON bytes, then `model_dump` gives the events row's `data`). Each path runs into a fresh database
with the product's ConsumerWorker on its own thread, as `consumer.run_product` times it.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from pydantic import BaseModel

from bench.pipeline.consumer import run_product
from bench.pipeline.events import create_topic, produce
from bench.postgres import postgres_server

GOAL = 0.8  # issue 17: a user-model topic runs at >= 0.8 x the envelope path


class Order(BaseModel):
    """The user's model of the bench's orders topic."""

    order_id: str
    status: str
    ts: datetime
    customer: str
    amount: float
    source: str
    note: str


def make_order(i: int, malformed: bool = False) -> bytes:
    """One ~300 B order in a team's own shape (the fields of make_event's `data`, plus id/time)."""
    return json.dumps(
        {
            "order_id": f"ord-{uuid.uuid4().hex}",
            "status": "created",
            "ts": "2026-01-01T00:00:00Z",
            "customer": f"c-{i % 977}",
            "amount": i % 1000 + 0.5,
            "source": "bench",
            "note": "x" * 110,
        }
    ).encode()


def measure(bootstrap: str, count: int) -> dict:
    """Entries 'envelope → <db>' and 'user model topic → <db>' (kafka-python) on `count` events."""
    from servicescheduler import TopicContract, TopicRegistry

    envelope = create_topic("bench-envelope")
    orders = create_topic("bench-orders")
    produce(bootstrap, envelope, count)
    produce(bootstrap, orders, count, factory=make_order)
    registry = TopicRegistry()
    registry.add(TopicContract(orders, model=Order, key=lambda o: o.order_id, occurred_at=lambda o: o.ts))
    out: dict = {}
    for backend in ("SQLite", "PostgreSQL"):
        if backend == "PostgreSQL" and postgres_server()[1]:
            continue
        base = run_product(backend, bootstrap, envelope, count)
        user = run_product(backend, bootstrap, orders, count, topics=registry)  # KAFKA_TOPICS empty
        r_base, r_user = base.get("events_per_s"), user.get("events_per_s")
        relative = round(r_user / r_base, 2) if r_base and r_user else None
        c_base, c_user = base.get("cpu_us_per_event"), user.get("cpu_us_per_event")
        cpu_relative = round(c_base / c_user, 2) if c_base and c_user else None
        out[f"envelope → {backend}"] = {**base, "note": f"{base.get('note', '')}; CPU {c_base} µs/event"}
        out[f"user model topic → {backend}"] = {
            **user,
            "vs_envelope": relative,
            "cpu_vs_envelope": cpu_relative,
            "note": f"{user.get('note', '')}; {relative} × the envelope row above by rate, {cpu_relative} × "
            f"by CPU per event ({c_user} µs; goal ≥ {GOAL})",
        }
    return out
