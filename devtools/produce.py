"""Sends sample events to Kafka: `python -m devtools.produce --count N [--rate R] ...`.

Realistic events (~300 B JSON: order.created, payment.captured, user.signed_up, ...), some with
`notify`, and with --bad-ratio deliberately malformed ones of every kind (invalid UTF-8, invalid
JSON, schema violation, oversize). Bootstrap: --bootstrap, else KAFKA_BOOTSTRAP_SERVERS, else
127.0.0.1:9092. Prints a one-line summary.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
import uuid
from datetime import UTC, datetime
from typing import Any

BAD_KINDS = ("encoding", "json", "schema", "oversize")
TYPES = ("order.created", "order.shipped", "payment.captured", "payment.refunded", "user.signed_up")
MAX_COUNT = 10_000_000


def sample_event(rng: random.Random, *, notify: bool) -> dict[str, Any]:
    """A realistic event of a random type (~300 bytes as JSON)."""
    event_type = rng.choice(TYPES)
    event = {
        "id": f"evt-{uuid.uuid4().hex}",
        "type": event_type,
        "occurred_at": datetime.now(UTC).isoformat(),
        "data": {
            "customer_id": f"cus-{rng.randrange(10**6):06d}",
            "amount_cents": rng.randrange(100, 50_000),
            "currency": rng.choice(("EUR", "USD", "GBP")),
            "items": rng.randrange(1, 9),
            "channel": rng.choice(("web", "ios", "android")),
            "note": "sample event from devtools.produce",
        },
    }
    if notify:
        event["notify"] = {"channel": "log", "recipient": f"ops+{event_type}@example.com"}
    return event


def bad_message(kind: str, rng: random.Random, *, max_bytes: int) -> bytes:
    """A message the consumer must dead-letter, of the given kind."""
    if kind == "encoding":
        return b"\xff\xfe not utf-8 \xc3\x28"
    if kind == "json":
        return b'{"id": "broken", "type": '
    if kind == "schema":
        return json.dumps({"id": "", "type": 42, "notify": {"channel": "sms"}}).encode()
    padding = "x" * (max_bytes + 1)
    return json.dumps({"id": f"big-{rng.randrange(10**9)}", "type": "blob", "data": {"pad": padding}}).encode()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m devtools.produce", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, required=True, help="messages to send (1..10,000,000)")
    parser.add_argument("--rate", type=float, default=0.0, help="messages per second (0: as fast as possible)")
    parser.add_argument("--bad-ratio", type=float, default=0.0, help="share of malformed messages (0..1)")
    parser.add_argument("--notify-ratio", type=float, default=0.05, help="share of events with notify (0..1)")
    parser.add_argument("--topic", default=os.environ.get("KAFKA_TOPICS", "events").split(",")[0].strip())
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    parser.add_argument("--max-message-bytes", type=int, default=1_048_576, help="consumer's size limit")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    if not 1 <= args.count <= MAX_COUNT:
        parser.error(f"--count must be between 1 and {MAX_COUNT}")
    for name in ("bad_ratio", "notify_ratio"):
        if not 0 <= getattr(args, name) <= 1:
            parser.error(f"--{name.replace('_', '-')} must be between 0 and 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Sends the messages; returns the exit code."""
    from kafka import KafkaProducer

    args = parse_args(argv)
    rng = random.Random(args.seed)
    producer = KafkaProducer(
        bootstrap_servers=args.bootstrap.split(","),
        acks="all",
        linger_ms=5,
        max_request_size=max(1_048_576, args.max_message_bytes * 2 + 1024),
    )
    counts = {"good": 0, "notify": 0, **dict.fromkeys(BAD_KINDS, 0)}
    started = time.monotonic()
    for index in range(args.count):
        if rng.random() < args.bad_ratio:
            kind = BAD_KINDS[counts_bad(counts) % len(BAD_KINDS)]  # round-robin: every kind appears
            producer.send(args.topic, value=bad_message(kind, rng, max_bytes=args.max_message_bytes))
            counts[kind] += 1
        else:
            notify = rng.random() < args.notify_ratio
            event = sample_event(rng, notify=notify)
            producer.send(args.topic, value=json.dumps(event).encode(), key=event["id"].encode())
            counts["good"] += 1
            counts["notify"] += notify
        if args.rate > 0:
            delay = started + (index + 1) / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    producer.flush(timeout=60)
    producer.close(timeout=10)
    elapsed = time.monotonic() - started
    print(
        f"sent {args.count} messages to {args.topic} via {args.bootstrap} in {elapsed:.2f} s "
        f"({args.count / max(elapsed, 1e-9):.0f}/s): " + ", ".join(f"{k}={v}" for k, v in counts.items())
    )
    return 0


def counts_bad(counts: dict[str, int]) -> int:
    """How many malformed messages were sent so far."""
    return sum(counts[kind] for kind in BAD_KINDS)


if __name__ == "__main__":
    raise SystemExit(main())
