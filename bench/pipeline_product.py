"""The product's side of benchmarks 7, 8 and 9 (consumers.worker and the real app).

7: `ConsumerWorker` (validate, store idempotently in one transaction, commit) reads the topic that
   the raw loops read, into SQLite and into PostgreSQL, in-process, one poll step at a time. A
   fresh consumer group joins first (Tansu delays a new group's first join by about half the
   session timeout, ~3 s with 6000 ms): that join and the first batch are excluded from the rate,
   which is (events after the first batch) / (end of the last batch − end of the first batch).
   Then the same worker consumes PROFILE_EVENTS freshly produced
   events under cProfile (same group: no second join) and the top costs go into the report.
8: the real app (`uvicorn server:app` in a subprocess) consumes events with `notify` produced at a
   fixed rate; latency = webhook receive time − produce time (carried in the event `data`).
9: RSS and threads of the real service after it consumed benchmark 7's clean topic.

PostgreSQL: BENCH_DATABASE_URL when given (one database is created per run on that server), else
a throw-away cluster (tests/infra/postgres.py) started on first use and stopped by `shutdown()`.
"""

from __future__ import annotations

import contextlib
import cProfile
import os
import random
import tempfile
import time
import uuid
from datetime import UTC
from pathlib import Path

from bench.stats import summarize

SESSION_TIMEOUT_MS, HEARTBEAT_MS, BATCH = 6000, 1000, 2000  # BATCH: KAFKA_BATCH_SIZE's default
# --quick only: a shorter session makes Tansu's first join of a fresh group ~1 s instead of ~3 s.
GROUP_TIMING = {"full": (SESSION_TIMEOUT_MS, HEARTBEAT_MS), "quick": (2000, 500)}
_MODE = {"quick": False}


def set_quick(quick: bool) -> None:
    """Chooses the consumer-group timing of every consumer this module starts."""
    _MODE["quick"] = quick


def _group_timing() -> tuple[int, int]:
    return GROUP_TIMING["quick" if _MODE["quick"] else "full"]


PROFILE_EVENTS = 10_000  # five batches of 2000
E2E = {"full": (100, 60.0), "quick": (100, 10.0)}  # events/s, seconds

_PG: dict = {"cluster": None, "url": None, "error": None}
_BACKGROUND: list = []  # stop threads of services, joined by shutdown()


# ------------------------------------------------------------------ PostgreSQL
def postgres_server() -> tuple[str | None, str | None]:
    """(server URL, None) or (None, why PostgreSQL rows are skipped); starts a cluster once."""
    if _PG["url"] or _PG["error"]:
        return _PG["url"], _PG["error"]
    given = os.environ.get("BENCH_DATABASE_URL")
    if given:
        _PG["url"] = given
        return given, None
    try:
        from tests.infra.postgres import PostgresCluster, postgres_available

        if not postgres_available():
            _PG["error"] = (
                "PostgreSQL rows skipped: no BENCH_DATABASE_URL and no PostgreSQL server "
                "binaries (initdb/pg_ctl) installed"
            )
        else:
            import atexit

            _PG["cluster"] = PostgresCluster().start()
            atexit.register(shutdown)  # also on an unexpected exit of the harness
            _PG["url"] = _PG["cluster"].url
    except Exception as exc:  # noqa: BLE001  (reported as the skip reason)
        _PG["error"] = f"PostgreSQL rows skipped: cluster did not start ({type(exc).__name__}: {exc})"[:300]
    return _PG["url"], _PG["error"]


def shutdown() -> None:
    """Joins background service stops; stops the PostgreSQL cluster the bench started (idempotent)."""
    while _BACKGROUND:
        _BACKGROUND.pop().join(30)
    cluster, _PG["cluster"] = _PG["cluster"], None
    _PG["url"] = None if cluster is not None else _PG["url"]
    if cluster is not None:
        cluster.stop()


@contextlib.contextmanager
def _database_url(backend: str):
    """A fresh, empty database for one run: a SQLite file in a temp dir, or a new PG database."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-consume-"))
    if backend == "SQLite":
        yield f"sqlite:///{tmp / 'bench.db'}", tmp
        return
    from tests.infra.postgres import create_database, drop_database

    server, _ = postgres_server()
    name = f"bench_{uuid.uuid4().hex[:10]}"
    url = create_database(server, name)
    try:
        yield url, tmp
    finally:
        with contextlib.suppress(Exception):
            drop_database(server, name)


def consumer_settings(tmp: Path, database_url: str, bootstrap: str, topic: str, **extra: object):
    """Service settings for the product's consumer on `topic` with a fresh group."""
    from bench.common import bench_settings

    return bench_settings(
        tmp,
        database_url=database_url,
        kafka_enabled=True,
        kafka_bootstrap_servers=bootstrap,
        kafka_topics=topic,
        kafka_group_id=f"bench-{uuid.uuid4().hex[:8]}",
        kafka_session_timeout_ms=_group_timing()[0],
        kafka_heartbeat_interval_ms=_group_timing()[1],
        kafka_batch_size=BATCH,
        **extra,
    )


# ------------------------------------------------------------------ benchmark 7
def _poll_until(worker, target: int, timeout: float, profiler: cProfile.Profile | None = None) -> dict:
    """poll_once() until `target` messages were seen or `timeout` s passed (bounded)."""
    seen = stored = dead = dup = batches = 0
    first_at = first_n = last_at = None
    uncommitted = 0
    started = time.monotonic()
    deadline = started + timeout
    while seen < target and time.monotonic() < deadline:
        if profiler is not None:
            profiler.enable()
        outcome = worker.poll_once()
        if profiler is not None:
            profiler.disable()
        if not outcome.messages:
            continue
        now = time.monotonic()
        if first_at is None:
            first_at, first_n = now, outcome.messages
        last_at = now
        batches += 1
        seen += outcome.messages
        stored += outcome.stored
        dead += outcome.dead_lettered
        dup += outcome.duplicates
        uncommitted += not outcome.committed
    return {
        "seen": seen,
        "stored": stored,
        "dead": dead,
        "duplicates": dup,
        "batches": batches,
        "uncommitted_batches": uncommitted,
        "started": started,
        "first_at": first_at,
        "first_n": first_n,
        "last_at": last_at,
    }


def _row_count(database) -> int:
    from sqlalchemy import func, select

    from servicescheduler.storage.models import Event as EventRow

    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(EventRow.__table__)))


def _rate(run: dict) -> tuple[float | None, float]:
    """(events/s after the first batch, timed seconds)."""
    if run["first_at"] is None or run["last_at"] is None:
        return None, 0.0
    seconds = run["last_at"] - run["first_at"]
    return (round((run["seen"] - run["first_n"]) / seconds) if seconds > 0 else None), seconds


def _run_thread(worker, target: int, timeout: float) -> dict:
    """The worker as the service runs it (its own thread, batches overlapped), until `target`
    messages were processed or `timeout` s passed; times read from its published counters."""
    started = time.monotonic()
    deadline = started + timeout
    first_at = first_n = last_at = None
    seen = 0
    worker.start()
    try:
        while seen < target and time.monotonic() < deadline and worker.is_alive():
            snap = worker.snapshot()
            now = time.monotonic()
            if snap["messages_processed"] > seen:
                seen = snap["messages_processed"]
                first_at, first_n = (first_at, first_n) if first_at is not None else (now, seen)
                last_at = now
            time.sleep(0.002)  # sampling period of the counters (bounded by the deadline)
    finally:
        worker.stop(30)
    snap = worker.snapshot()
    return {
        "seen": seen,
        "stored": snap["events_stored"],
        "dead": snap["dead_lettered"],
        "duplicates": snap["duplicates_skipped"],
        "started": started,
        "first_at": first_at,
        "first_n": first_n,
        "last_at": last_at,
        "fatal": snap["fatal_error"],
    }


def _profile(worker, produce_more) -> dict:
    """PROFILE_EVENTS fresh events through the sequential step (`poll_once()`: store not
    overlapped, so every stage shows) under cProfile; same group, so the join is a rejoin."""
    worker.open()
    try:
        deadline = time.monotonic() + 30.0
        while not worker.snapshot()["assigned_partitions"] and time.monotonic() < deadline:
            worker.poll_once()  # rejoin: partitions assigned (nothing left to read) before timing
        produce_more(PROFILE_EVENTS)
        profiler = cProfile.Profile()
        prof_run = _poll_until(worker, PROFILE_EVENTS, timeout=60.0, profiler=profiler)
    finally:
        worker.close()
    return summarize_profile(profiler, prof_run["seen"])


def run_product(
    backend: str,
    bootstrap: str,
    topic: str,
    count: int,
    *,
    profile_if=None,
    produce_more=None,
    client: str = "kafka-python",
) -> dict:
    """One product run on `topic`. When `profile_if(rate)` is true, `produce_more(n)` adds n
    events to the topic and the SAME worker (no second group join) consumes them under cProfile."""
    from bench.common import open_database
    from servicescheduler.consumers.running.worker import ConsumerWorker

    profile = None
    with _database_url(backend) as (url, tmp):
        settings = consumer_settings(tmp, url, bootstrap, topic, kafka_client=client)
        database = open_database(settings)
        # The product logs one WARNING line per malformed message on stdout: kept (it is part of
        # the cost), but sent to /dev/null so the harness output stays readable.
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            run = _run_thread(ConsumerWorker(settings=settings, database=database), count, max(60.0, count / 500))
            rate, seconds = _rate(run)
            if profile_if is not None and produce_more is not None and profile_if(rate):
                profile = _profile(ConsumerWorker(settings=settings, database=database), produce_more)
        rows = _row_count(database)
        database.dispose()
    entry: dict = {
        "events": run["seen"],
        "stored": run["stored"],
        "dead_lettered": run["dead"],
        "duplicates": run["duplicates"],
        "rows_in_db": rows,
        "events_per_s": rate,
    }
    if run["first_at"] is None:
        return {**entry, "note": "no message consumed before the deadline"}
    join_s = run["first_at"] - run["started"]
    entry.update(
        join_s=round(join_s, 2),
        seconds=round(seconds, 3),
        note=f"join + 1st batch ({join_s:.1f} s) excluded; stored {run['stored']}, dead-lettered {run['dead']}",
    )
    if profile is not None:
        entry["profile"] = profile
    return entry


_PROFILE_KEYS = (  # (file suffix, function, label)
    ("consumers/worker.py", "poll_once", "poll_once (total)"),
    ("kafka/consumer/group.py", "poll", "KafkaConsumer.poll (fetch)"),
    ("consumers/worker.py", "_decode", "decode + validation (msgspec fast path)"),
    ("consumers/store.py", "store_batch", "store_batch (one transaction)"),
    ("consumers/store.py", "_run_handler", "handlers (build row dicts)"),
    ("consumers/bulk.py", "insert_new_events", "bulk insert of new events (COPY / multi-row INSERT)"),
    ("~", "<method 'encode' of 'msgspec.json.Encoder' objects>", "  JSON text of `data` (msgspec)"),
    ("consumers/store.py", "_insert_ignore", "INSERT … ON CONFLICT (notifications, dead letters; Core)"),
    ("sqlalchemy/engine/base.py", "_commit_impl", "database commit"),
    ("consumers/worker.py", "_commit_pending", "Kafka offset commit (sync round trip)"),
    ("consumers/status.py", "observe", "status: poll time, assignment, lag"),
    ("consumers/worker.py", "_account", "_account (counters, metrics)"),
)


def summarize_profile(profiler: cProfile.Profile, events: int) -> dict:
    """Cumulative time of the interesting functions and the top self-time functions, µs/event."""
    profiler.create_stats()  # what pstats.Stats(profiler) does; typeshed types the result only here
    stats = profiler.stats  # {(file, line, func): (cc, nc, tt, ct, callers)}
    total = (
        next((v[3] for k, v in stats.items() if k[0].endswith("consumers/worker.py") and k[2] == "poll_once"), None)
        or 1e-9
    )
    per_event = 1e6 / max(1, events)
    rows = []
    for suffix, func, label in _PROFILE_KEYS:
        ct = sum(v[3] for k, v in stats.items() if k[0].endswith(suffix) and k[2] == func)
        rows.append([label, round(ct * per_event, 1), round(100 * ct / total, 1)])
    top = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)[:8]
    self_rows = [
        [f"{_short(k[0])}:{k[1]}({k[2]})", v[1], round(v[2] * per_event, 1), round(100 * v[2] / total, 1)]
        for k, v in top
    ]
    return {"events": events, "total_s": round(total, 3), "cumulative": rows, "self": self_rows}


def _short(path: str) -> str:
    """A file name without machine-specific prefixes (site-packages/…, stdlib/…, repo-relative)."""
    from bench.common import ROOT

    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1]
    if path.startswith(str(ROOT)):
        return path[len(str(ROOT)) + 1 :]
    if "/lib/python" in path:
        return "stdlib/" + path.split("/lib/python", 1)[1].split("/", 1)[-1]
    return os.path.basename(path)


def product_rates(bootstrap: str, topic: str, count: int, *, base_rate: int | None, produce_more=None) -> dict:
    """Rows 'product → SQLite' and 'product → PostgreSQL' for `topic` (each run is then profiled
    when `produce_more` is given), and the same two with KAFKA_CLIENT=confluent-kafka."""
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
                from bench import storage_floor

                out[f"storage alone → {backend}"] = storage_floor.measure(backend, count)
            runs = [
                run_product(
                    backend,
                    bootstrap,
                    topic,
                    count,
                    client=client,
                    produce_more=produce_more if profiled and attempt == 0 else None,
                    profile_if=(lambda rate: True) if profiled and attempt == 0 else None,
                )
                for attempt in range(1 if _MODE["quick"] else REPEATS)
            ]
            out[name] = _best(runs)
    return out


REPEATS = 2  # product runs per row (full mode): rates here swing by ±25 % from run to run


def _best(runs: list[dict]) -> dict:
    """The run with the highest rate (the profile stays with the run that took it)."""
    best = max(runs, key=lambda run: run.get("events_per_s") or 0)
    profile = next((run["profile"] for run in runs if run.get("profile")), None)
    if len(runs) > 1:
        others = ", ".join(str(run.get("events_per_s")) for run in runs if run is not best)
        best = {**best, "note": f"{best.get('note', '')}; best of {len(runs)} runs (other: {others} ev/s)"}
    if profile is not None:
        best["profile"] = profile
    return best


# ------------------------------------------------------------------ benchmark 8
def seed_design_latency(n: int, seed: int = 7) -> dict:
    """Computed (simulated) latency of the seed's design, in ms.

    The seed ran the notification job `every(30).seconds` from a loop that calls run_pending()
    every 5 s; `schedule` plans next_run = end of the run + 30 s, which always falls just after a
    loop pass, so the job actually runs every 35 s. An event stored at a uniformly random moment
    waits until the next run: latency = next run − arrival.
    """
    rng = random.Random(seed)
    period = 30.0 + 5.0  # next 30 s tick + the 5 s loop poll that finds it
    samples = [period - rng.uniform(0.0, period) for _ in range(max(1, n))]
    return {**summarize(samples, 1000, 1), "samples_ms": sorted(round(s * 1000, 1) for s in samples)}


def measure_e2e(quick: bool, bootstrap: str) -> dict:
    """Benchmark 8: events with notify (webhook) at a fixed rate into the real app; latency per event."""
    from confluent_kafka import Producer

    from bench.footprint import Service
    from bench.pipeline import PARTITIONS, create_topic
    from tests.infra.webhook import WebhookReceiver

    set_quick(quick)
    rate, seconds = E2E["quick" if quick else "full"]
    total = int(rate * seconds)
    topic = create_topic("bench-e2e")
    receiver = WebhookReceiver().start()
    service = Service(
        bootstrap,
        topic,
        extra_env={
            "NOTIFY_WEBHOOK_URL": receiver.url,
            "KAFKA_GROUP_ID": f"bench-e2e-{uuid.uuid4().hex[:6]}",
            "KAFKA_SESSION_TIMEOUT_MS": str(_group_timing()[0]),
            "KAFKA_HEARTBEAT_INTERVAL_MS": str(_group_timing()[1]),
        },
    )
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": "all"})
    notes = []
    try:
        ready = service.wait_ready()
        if ready is None:
            return {"skipped": f"the app did not become ready (last /ready status {service.last_status})"}

        def send(seq: int, partition: int) -> None:
            event = {
                "id": f"e2e-{uuid.uuid4().hex}",
                "type": "order.created",
                "data": {"seq": seq, "produced_at": time.time(), "note": "x" * 100},
                "notify": {"channel": "webhook", "recipient": "ops@example.com"},
            }
            import json

            producer.produce(topic, json.dumps(event).encode(), partition=partition)
            producer.poll(0)

        # Warm-up: one event per partition, delivered before timing (group join, first task run).
        warm_started = time.monotonic()
        for p in range(PARTITIONS):
            send(-1, p)
        producer.flush(10)
        deadline = time.monotonic() + 60
        while len(receiver.received) < PARTITIONS and time.monotonic() < deadline:
            time.sleep(0.05)
        warm_s = time.monotonic() - warm_started
        notes.append(
            f"Warm-up (not timed): {len(receiver.received)}/{PARTITIONS} notifications delivered "
            f"{warm_s:.1f} s after the first produce (consumer-group join ≈ session timeout/2 on Tansu)."
        )
        started = time.monotonic()
        for seq in range(total):  # bounded: `total` events on a fixed schedule
            delay = started + seq / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            send(seq, seq % PARTITIONS)
        producer.flush(10)
        produce_s = time.monotonic() - started
        deadline = time.monotonic() + 30
        while len(receiver.received) < PARTITIONS + total and time.monotonic() < deadline:
            time.sleep(0.05)
        probe = service.probe()
    finally:
        stages_db = service.tmp / "svc.db"
        stopper = _stop_later(service, receiver)
    latencies, seen, delivered_at = [], set(), {}
    for body, at in zip(list(receiver.received), list(receiver.received_at), strict=False):
        data = ((body or {}).get("payload") or {}).get("data") or {}
        if data.get("seq", -1) >= 0 and data["seq"] not in seen:
            seen.add(data["seq"])
            latencies.append(at - data["produced_at"])
            delivered_at[data["seq"]] = at
    product = summarize(latencies, 1000, 1)
    stages = _e2e_stages(stages_db, delivered_at)  # read while the service is stopping (SQLite allows it)
    _BACKGROUND.append(stopper)  # joined by shutdown(); the stop is mostly waiting on timeouts
    seed = seed_design_latency(len(latencies) or total)
    notes += [
        f"{total} events produced at {rate}/s in {produce_s:.1f} s; {len(latencies)} delivered "
        f"(missing: {total - len(latencies)}). Service RSS at the end {probe.get('rss_mib')} MiB, "
        f"{probe.get('threads')} threads.",
        "Seed row is COMPUTED, not measured: the seed's notification job ran `every(30).seconds` from a "
        "loop polling every 5 s (runs land 35 s apart, see `seed_design_latency`); arrival uniform.",
        "Produce and receive timestamps are `time.time()` on the same machine (one clock).",
    ]
    if stages:
        notes.append(
            "Where the time goes (from the service's own database: `events.received_at` is set when "
            "the consumer decodes the batch): produce → consumer decoded p50/p99 "
            f"{stages['consume']['p50']}/{stages['consume']['p99']} ms; decoded → webhook received p50/p99 "
            f"{stages['deliver']['p50']}/{stages['deliver']['p99']} ms."
        )
    return {
        "rate_per_s": rate,
        "seconds": seconds,
        "product": product,
        "stages_ms": stages,
        "seed_computed": {k: v for k, v in seed.items() if k != "samples_ms"},
        "notes": notes,
        "method": (
            "The real app (`uvicorn server:app`, built-in tasks, SQLite) in a subprocess on 127.0.0.1, "
            "consuming a 3-partition topic; NOTIFY_WEBHOOK_URL points at a WebhookReceiver in the bench "
            f"process. {rate} events/s with `notify: webhook` for {seconds:.0f} s (confluent-kafka, "
            "linger 0, acks all), each carrying its produce time in `data`. Latency = receive time − "
            "produce time: broker, poll, validation and storage, the consumer's "
            '`request_run("notifications")`, the task run, and the HTTP POST.'
        ),
        "raw_ms": {
            "product (measured)": [round(x * 1000, 2) for x in latencies],
            "seed design (computed)": seed["samples_ms"],
        },
    }


def _stop_later(service, receiver):
    """Stops the service (graceful, bounded) and then the receiver, in a thread; returns it."""
    import threading

    def run() -> None:
        try:
            service.stop()
        finally:
            receiver.stop()

    thread = threading.Thread(target=run, name="bench-e2e-stop", daemon=True)
    thread.start()
    return thread


def _e2e_stages(db_path: Path, delivered_at: dict) -> dict | None:
    """Splits each latency at `events.received_at` (read from the stopped service's SQLite file)."""
    import json
    import sqlite3
    from datetime import datetime

    try:
        with contextlib.closing(sqlite3.connect(db_path)) as conn:
            rows = conn.execute("SELECT data, received_at FROM ss_events").fetchall()
    except sqlite3.Error:
        return None
    consume, deliver = [], []
    for data, received in rows:
        payload = json.loads(data) if isinstance(data, str) else (data or {})
        seq = payload.get("seq", -1)
        if seq < 0 or seq not in delivered_at:
            continue
        stamp = datetime.fromisoformat(str(received))
        at = (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()
        consume.append(at - payload["produced_at"])
        deliver.append(delivered_at[seq] - at)
    if not consume:
        return None
    return {"consume": summarize(consume, 1000, 1), "deliver": summarize(deliver, 1000, 1)}


# ------------------------------------------------------------------ benchmark 9
def footprint_after_consume(quick: bool, bootstrap: str) -> dict:
    """RSS/threads of the real service once it consumed (7)'s clean topic (or a fresh one)."""
    import httpx

    from bench.footprint import Service
    from bench.pipeline import EVENTS, LAST_TOPICS, create_topic, produce

    set_quick(quick)
    topic, count = LAST_TOPICS.get("clean", (None, 0))
    origin = "benchmark 7's clean topic"
    if topic is None:
        count = EVENTS["quick" if quick else "full"]
        topic = create_topic("bench-fp")
        produce(bootstrap, topic, count)
        origin = "a freshly produced topic (7 did not run)"
    service = Service(
        bootstrap,
        topic,
        extra_env={
            "KAFKA_GROUP_ID": f"bench-fp-{uuid.uuid4().hex[:6]}",
            "KAFKA_SESSION_TIMEOUT_MS": str(_group_timing()[0]),
            "KAFKA_HEARTBEAT_INTERVAL_MS": str(_group_timing()[1]),
        },
    )
    try:
        if service.wait_ready() is None:
            return {"note": f"not ready (last status {service.last_status})"}
        started = time.monotonic()
        processed = 0
        with httpx.Client(base_url=f"http://127.0.0.1:{service.port}", timeout=5) as client:
            deadline = started + max(60.0, count / 500)
            while processed < count and time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    processed = client.get("/consumer").json().get("messages_processed", 0)
                time.sleep(0.2)
        consume_s = time.monotonic() - started
        time.sleep(1.0)
        probe = service.probe()
        return {
            "seconds": None,
            **probe,
            "note": f"consumed {processed}/{count} events of {origin} in {consume_s:.1f} s (incl. group join)",
        }
    finally:
        service.stop()
