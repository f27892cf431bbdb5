"""Benchmark 7, FastStream comparison: the product's consumer and its FastStream peer
(`faststream_peer`) alternating on ONE topic, per client pair and database, in rounds.

The topic holds `count` events on 3 partitions, 1 % malformed and 5 % with `notify` (the issue's
mix). A round runs the raw kafka-python loop once, then for SQLite and PostgreSQL each pair
(product with kafka-python vs FastStream with aiokafka, the default clients; product with
confluent-kafka vs FastStream with confluent) back to back, the order flipping every round; each
run has a fresh database and a fresh consumer group, so every run reads the whole topic. Reported:
medians of each side and the median of the per-round ratios product ÷ FastStream (the only figure
that survives this machine's noise), the product's per-round ratio to the raw loop of its round,
and whether both stored exactly the produced events, dead letters and notifications.
"""

from __future__ import annotations

import contextlib
import os
import statistics

from bench.pipeline.consumer import fresh_database, group_timing, run_product
from bench.pipeline.events import NOTIFY_EVERY, PARTITIONS, create_topic, make_notify_event, produce
from bench.pipeline.faststream_peer import run_peer
from bench.pipeline.raw_consumers import kafka_python_loop
from bench.postgres import postgres_server

PAIRS = (("kafka-python", "aiokafka"), ("confluent-kafka", "confluent"))
ROUNDS = {"quick": 1, "full": 4}
MALFORMED_EVERY = 100


def faststream_available() -> str | None:
    """None when FastStream and both its backends import, else why not (a dev requirement)."""
    try:
        import faststream.confluent  # noqa: F401
        import faststream.kafka  # noqa: F401
    except Exception as exc:  # noqa: BLE001  (reported as the skip reason)
        return f"FastStream peer not run ({type(exc).__name__}: {exc}); pip install -r requirements-dev.txt"
    return None


def expected_counts(count: int) -> dict[str, int]:
    """Events, dead letters and notifications the topic must leave in a database."""
    dead = sum(1 for i in range(count) if i % MALFORMED_EVERY == MALFORMED_EVERY - 1)
    notify = sum(1 for i in range(count) if i % NOTIFY_EVERY == 0 and i % MALFORMED_EVERY != MALFORMED_EVERY - 1)
    return {"stored": count - dead, "dead_lettered": dead, "notifications": notify}


def _ours(backend: str, bootstrap: str, topic: str, count: int, client: str) -> dict:
    entry = run_product(backend, bootstrap, topic, count, client=client)
    entry["counts"] = {
        "stored": entry.get("rows_in_db"),
        "dead_lettered": entry.get("dead_letter_rows"),
        "notifications": entry.get("notification_rows"),
    }
    return entry


def _peer(backend: str, bootstrap: str, topic: str, count: int, client: str) -> dict:
    session_ms, heartbeat_ms = group_timing()
    with fresh_database(backend) as (url, _tmp), open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        entry = run_peer(
            client,
            bootstrap,
            topic,
            url,
            count,
            timeout=max(60.0, count / 500),
            session_ms=session_ms,
            heartbeat_ms=heartbeat_ms,
        )
    entry["counts"] = {key: entry[key] for key in ("stored", "dead_lettered", "notifications")}
    return entry


def measure(quick: bool, bootstrap: str, count: int) -> dict:
    """Rounds of raw loop + (product, FastStream) per pair and database on one fresh topic."""
    topic = create_topic("bench-peer")
    produce(bootstrap, topic, count, MALFORMED_EVERY, factory=make_notify_event)
    expected = expected_counts(count)
    backends = ["SQLite"] + ([] if postgres_server()[1] else ["PostgreSQL"])
    runs: dict[str, list[dict]] = {}
    raw: list[int | None] = []
    for index in range(ROUNDS["quick" if quick else "full"]):
        loop = kafka_python_loop(bootstrap, topic, PARTITIONS, count, timeout=max(60, count / 2000))
        raw.append(round(loop["events"] / loop["seconds"]) if loop["seconds"] else None)
        for backend in backends:
            for ours, peer in PAIRS:
                sides = [
                    (f"product ({ours}) → {backend}", _ours, ours),
                    (f"FastStream ({peer}) → {backend}", _peer, peer),
                ]
                for name, run, client in sides if index % 2 == 0 else sides[::-1]:
                    entry = run(backend, bootstrap, topic, count, client)
                    entry["exact"] = entry["counts"] == expected
                    runs.setdefault(name, []).append(entry)
    from bench.pipeline.peer_kill9 import kill9_check

    kill9 = [kill9_check(client, bootstrap, topic, count, expected) for _, client in PAIRS]
    return {
        "kill9": kill9,
        "topic_events": count,
        "expected": expected,
        "rounds": len(raw),
        "raw_kafka_python": raw,
        "runs": runs,
        "pairs": _pairs(runs, raw, backends),
        "postgres_note": postgres_server()[1],
    }


def _median(values: list[float]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 2) if present else None


def _pairs(runs: dict[str, list[dict]], raw: list[int | None], backends: list[str]) -> list[dict]:
    """Per pair and database: medians, median paired ratio, product ÷ raw kafka-python per round."""
    out = []
    for backend in backends:
        for ours, peer in PAIRS:
            mine = [e.get("events_per_s") for e in runs[f"product ({ours}) → {backend}"]]
            theirs = [e.get("events_per_s") for e in runs[f"FastStream ({peer}) → {backend}"]]
            ratios = [m / t if m and t else None for m, t in zip(mine, theirs, strict=True)]
            to_raw = [m / r if m and r else None for m, r in zip(mine, raw, strict=True)]
            peer_to_raw = [t / r if t and r else None for t, r in zip(theirs, raw, strict=True)]
            out.append(
                {
                    "backend": backend,
                    "product": ours,
                    "peer": peer,
                    "product_median": _median(mine),
                    "peer_median": _median(theirs),
                    "ratio_median": _median(ratios),
                    "ratios": [None if r is None else round(r, 2) for r in ratios],
                    "product_to_raw_median": _median(to_raw),
                    "product_to_raw": [None if r is None else round(r, 2) for r in to_raw],
                    "peer_to_raw_median": _median(peer_to_raw),
                    "exact_product": all(e["exact"] for e in runs[f"product ({ours}) → {backend}"]),
                    "exact_peer": all(e["exact"] for e in runs[f"FastStream ({peer}) → {backend}"]),
                }
            )
    return out
