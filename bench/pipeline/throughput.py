"""Benchmark 7: consumer throughput.

One Tansu broker (devtools.tansu) on 127.0.0.1 for the whole run. Events (~300 B JSON, see
`events`) are pre-produced with confluent-kafka to 3-partition topics, clean and with 1 % malformed.
The raw kafka-python and confluent-kafka loops (`raw_consumers`, the baselines) read the same topics
in the same run; the product's consumer (`consumer`) stores them idempotently in SQLite and
PostgreSQL, next to the ceiling its storage stage alone sets (`storage_floor`).
"""

from __future__ import annotations

import gc
import statistics
import sys

from bench.pipeline import peer_compare, storage_floor, user_topic
from bench.pipeline.consumer import consumer_available, run_product, set_quick
from bench.pipeline.events import EVENTS, LAST_TOPICS, PARTITIONS, create_topic, produce
from bench.pipeline.peer_compare import faststream_available
from bench.pipeline.profile import profile_findings
from bench.pipeline.raw_consumers import confluent_loop, kafka_python_loop
from bench.postgres import postgres_server
from bench.stats import ratio


def raw_rates(bootstrap: str, topic: str, count: int) -> dict:
    """events/s of the raw kafka-python and confluent-kafka loops on `topic`."""
    out = {}
    for name, loop in (("raw kafka-python", kafka_python_loop), ("raw confluent-kafka", confluent_loop)):
        result = loop(bootstrap, topic, PARTITIONS, count, timeout=max(60, count / 2000))
        seconds = result["seconds"]
        out[name] = {**result, "events_per_s": round(result["events"] / seconds) if seconds else None}
    return out


def product_rates(
    bootstrap: str, topic: str, count: int, *, quick: bool, base_rate: int | None, produce_more=None
) -> dict:
    """Rows 'product → SQLite' and 'product → PostgreSQL' for `topic` (each run is then profiled
    when `produce_more` is given), and the same two with KAFKA_CLIENT=confluent-kafka.

    Every product run is paired with raw kafka-python loops on the same topic right before and
    right after it (`paired_run`): the ratio to them is what this machine's load moves least, so
    each row carries the ratio of every run, its median and its lowest (the goal holds "in every
    run")."""
    out = {}
    for client, prefix in (("kafka-python", "product"), ("confluent-kafka", "product (confluent-kafka)")):
        for backend in ("SQLite", "PostgreSQL"):
            name = f"{prefix} → {backend}"
            if backend == "PostgreSQL":
                _, reason = postgres_server()
                if reason:
                    out[name] = {"events": None, "events_per_s": None, "note": reason}
                    continue
            profiled = client == "kafka-python"  # the table shows the next bottleneck of the default
            if profiled and produce_more is not None:  # once, on the clean topic: the storage ceiling
                out[f"storage alone → {backend}"] = storage_floor.measure(backend, count)
            runs = [
                paired_run(
                    name,
                    backend,
                    bootstrap,
                    topic,
                    count,
                    client=client,
                    produce_more=produce_more if profiled and attempt == 0 else None,
                    profile_if=(lambda rate: True) if profiled and attempt == 0 else None,
                )
                for attempt in range(1 if quick else REPEATS)
            ]
            out[name] = _median_run(runs)
    return out


USER_TOPIC_EVENTS = {"full": 20_000, "quick": 10_000}  # per path: the comparison, not the ceiling
REPEATS = 3  # product runs per row (full mode): rates here swing by ±25 % from run to run


def paired_run(name: str, backend: str, bootstrap: str, topic: str, count: int, **kwargs) -> dict:
    """One product run (run_product) bracketed by raw kafka-python loops on the same topic, one
    just before and one just after it: the raw rate is their mean, so a load change during the
    run moves both sides. The run's `ratio_to_raw` is printed as it is taken."""
    before = _raw_rate(bootstrap, topic, count)
    run = run_product(backend, bootstrap, topic, count, **kwargs)
    after = _raw_rate(bootstrap, topic, count)
    known = [rate for rate in (before, after) if rate]
    raw_rate = round(statistics.mean(known)) if known else None
    run["raw_kafka_python_per_s"] = raw_rate
    run["ratio_to_raw"] = ratio(run.get("events_per_s"), raw_rate, 3)
    print(
        f"[bench 7] {name}: {run.get('events_per_s')} ev/s, raw kafka-python before/after {before}/{after} "
        f"ev/s, ratio {run['ratio_to_raw']}, {run.get('cpu_us_per_event')} µs CPU/event",
        file=sys.stderr,
        flush=True,
    )
    return run


def _raw_rate(bootstrap: str, topic: str, count: int) -> int | None:
    raw = kafka_python_loop(bootstrap, topic, PARTITIONS, count, timeout=max(60, count / 2000))
    return round(raw["events"] / raw["seconds"]) if raw["seconds"] else None


def _median_run(runs: list[dict]) -> dict:
    """The run with the median rate, with every run's paired ratio to raw kafka-python, their
    median and lowest (the profile stays with the run that took it)."""
    ranked = sorted(runs, key=lambda run: run.get("events_per_s") or 0)
    chosen = dict(ranked[(len(ranked) - 1) // 2])
    profile = next((run["profile"] for run in runs if run.get("profile")), None)
    ratios = [run["ratio_to_raw"] for run in runs if run.get("ratio_to_raw") is not None]
    chosen["ratios_to_raw"] = ratios
    chosen["ratio_to_raw_median"] = round(statistics.median(ratios), 3) if ratios else None
    chosen["ratio_to_raw_min"] = min(ratios) if ratios else None
    chosen.pop("profile", None)
    if len(runs) > 1:
        rates = ", ".join(str(run.get("events_per_s")) for run in runs)
        chosen["note"] = (
            f"{chosen.get('note', '')}; median of {len(runs)} runs ({rates} ev/s); paired ratios to raw "
            f"kafka-python {', '.join(str(r) for r in ratios)}"
        )
    if profile is not None:
        chosen["profile"] = profile
    return chosen


def _freeze_as_the_service_starts() -> None:
    """What GC_FREEZE_ON_START (on in the container and `make run`) does as the service starts:
    everything alive now leaves the collector's reach. Every consumer measured here (raw loops,
    the product, the FastStream peer) runs in this process, so all of them run frozen."""
    gc.collect()
    gc.freeze()


def _unfrozen_rows(bootstrap: str, topic: str, count: int) -> dict:
    """The default client's rows once more with GC_FREEZE_ON_START=false (a host app's default):
    every full collection then walks the process's start-up objects too."""
    out = {}
    gc.unfreeze()
    try:
        for backend in ("SQLite", "PostgreSQL"):
            if backend == "PostgreSQL" and postgres_server()[1]:
                continue
            out[f"product → {backend}, GC_FREEZE_ON_START=false"] = _median_run(
                [paired_run(f"product → {backend} (not frozen)", backend, bootstrap, topic, count)]
            )
    finally:
        _freeze_as_the_service_starts()
    return out


def measure_throughput(quick: bool, bootstrap: str) -> dict:
    """Benchmark 7: raw loops and the product's consumer (SQLite, PostgreSQL) on the same topics."""
    count = EVENTS["quick" if quick else "full"]
    _freeze_as_the_service_starts()
    try:
        return _measure(quick, bootstrap, count)
    finally:
        gc.unfreeze()  # the benchmarks after this one measure the process as they found it


def _measure(quick: bool, bootstrap: str, count: int) -> dict:
    out: dict = {"events": count, "topics": {}, "notes": [], "profiles": {}}
    for label, malformed_every in (("clean", 0), ("1 % malformed", 100)):
        topic = create_topic("bench-clean" if not malformed_every else "bench-bad")
        produce_s = produce(bootstrap, topic, count, malformed_every)
        LAST_TOPICS[label] = (topic, count)
        entries = raw_rates(bootstrap, topic, count)
        reason = consumer_available()
        if reason is None:
            set_quick(quick)
            more = (lambda n, topic=topic: produce(bootstrap, topic, n)) if label == "clean" else None
            entries.update(
                product_rates(
                    bootstrap,
                    topic,
                    count,
                    quick=quick,
                    produce_more=more,
                    base_rate=entries["raw kafka-python"].get("events_per_s"),
                )
            )
            if label == "clean" and not quick:
                entries.update(_unfrozen_rows(bootstrap, topic, count))
            for name, entry in entries.items():
                if entry.get("profile"):
                    out["profiles"][f"{name}, {label}"] = entry.pop("profile")
        else:
            for name in ("product → SQLite", "product → PostgreSQL"):
                entries[name] = {"events": None, "events_per_s": None, "note": "not run: " + reason[:120]}
        out["topics"][label] = entries
        out["notes"].append(f"{label}: {count} events produced in {produce_s:.2f} s (confluent-kafka, linger 5 ms).")
    if consumer_available() is None:  # issue 17: a user-model topic against the envelope, same run
        user_events = USER_TOPIC_EVENTS["quick" if quick else "full"]
        out["topics"]["user model topic"] = user_topic.measure(bootstrap, user_events)
    out["analysis"] = profile_findings(out["profiles"])
    reason = consumer_available() or faststream_available()
    out["faststream"] = {"skipped": reason} if reason else peer_compare.measure(quick, bootstrap, count)
    out["method"] = (
        f"{count} pre-produced ~300 B JSON events (product format) on 3 partitions of a Tansu broker "
        "(in-memory storage) on 127.0.0.1, clean and with 1 % malformed (invalid JSON / UTF-8 / "
        "schema in turn). Raw loops read by partition assignment, no group, no commit, `json.loads` "
        "only; rate = events / (last record − first record). The product's `ConsumerWorker` (fresh "
        "group, batches of up to 2000 (KAFKA_BATCH_SIZE): validate, store idempotently in one durable "
        "transaction, commit offsets) runs on its own thread as in the service; its rate = events after "
        "its first batch / (time the counters reached all events − time they showed the first batch), "
        "read from its published counters every 2 ms, so the consumer-group join (~3 s on Tansu with the "
        "6 s session timeout; --quick uses 2 s, ~1 s) is excluded. `storage alone` rows store the same "
        "events, decoded beforehand, with the product's `store_batch()` and no Kafka: the ceiling the "
        "database sets for the whole consumer. All consumers read the same topics in this run, "
        "one after another; every product run is paired with raw kafka-python loops on the same "
        "topic just before and after it (their mean), and its row gives the median of the runs "
        "(3 in full mode) and of the paired ratios (each run's ratio is in the note). "
        "The bench process freezes its collector before measuring (gc.collect(); gc.freeze()), as "
        "the service does at start with GC_FREEZE_ON_START=true (the container's and `make run`'s "
        "setting; every consumer here, the FastStream peer included, runs in that process); the "
        "`GC_FREEZE_ON_START=false` rows are one paired run each without it. "
        "FastStream comparison: see its table "
        "(bench/pipeline/peer_compare.py, bench/pipeline/faststream_peer.py)."
    )
    return out
