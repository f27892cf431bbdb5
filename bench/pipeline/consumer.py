"""The product's consumer as benchmark 7 runs it: `ConsumerWorker` (validate, store idempotently in one
transaction, commit) on its own thread, as in the service, reading a topic into a fresh SQLite or
PostgreSQL database. A fresh consumer group joins first (Tansu delays a new group's first join by about
half the session timeout, ~3 s with 6000 ms): that join and the first batch are excluded from the rate,
which is (events after the first batch) / (end of the last batch − end of the first batch). Then the
same worker can consume PROFILE_EVENTS freshly produced events under cProfile (same group: no second
join) for the report's cost table.
"""

from __future__ import annotations

import contextlib
import cProfile
import os
import tempfile
import time
import uuid
from pathlib import Path

from bench.pipeline.profile import summarize_profile
from bench.postgres import postgres_server

SESSION_TIMEOUT_MS, HEARTBEAT_MS, BATCH = 6000, 1000, 2000  # BATCH: KAFKA_BATCH_SIZE's default
# --quick only: a shorter session makes Tansu's first join of a fresh group ~1 s instead of ~3 s.
GROUP_TIMING = {"full": (SESSION_TIMEOUT_MS, HEARTBEAT_MS), "quick": (2000, 500)}
_MODE = {"quick": False}


def set_quick(quick: bool) -> None:
    """Chooses the consumer-group timing of every consumer this module starts."""
    _MODE["quick"] = quick


def group_timing() -> tuple[int, int]:
    """(session timeout, heartbeat interval) in ms for the consumers started now."""
    return GROUP_TIMING["quick" if _MODE["quick"] else "full"]


PROFILE_EVENTS = 10_000  # five batches of 2000


def consumer_available() -> str | None:
    """None when the product's consumer (consumers/worker.py) can be imported, else why not."""
    try:
        import servicescheduler.consumers.running.worker  # noqa: F401
    except Exception as exc:  # not written yet, or broken
        return f"the product's consumer is not available ({type(exc).__name__}: {exc})"
    return None


@contextlib.contextmanager
def fresh_database(backend: str):
    """A fresh, empty database for one run: a SQLite file in a temp dir, or a new PG database."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-consume-"))
    if backend == "SQLite":
        yield f"sqlite:///{tmp / 'bench.db'}", tmp
        return
    from devtools.postgres import create_database, drop_database

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
        kafka_session_timeout_ms=group_timing()[0],
        kafka_heartbeat_interval_ms=group_timing()[1],
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


def _row_count(database, model_name: str = "Event") -> int:
    """Rows of one table of storage/models.py (Event by default)."""
    from sqlalchemy import func, select

    from servicescheduler.storage import models

    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(getattr(models, model_name).__table__)))


def _rate(run: dict) -> tuple[float | None, float]:
    """(events/s after the first batch, timed seconds)."""
    if run["first_at"] is None or run["last_at"] is None:
        return None, 0.0
    seconds = run["last_at"] - run["first_at"]
    return (round((run["seen"] - run["first_n"]) / seconds) if seconds > 0 else None), seconds


def _run_thread(worker, target: int, timeout: float) -> dict:
    """The worker as the service runs it (its own thread, batches overlapped), until `target`
    messages were processed or `timeout` s passed; times read from its published counters."""
    from bench.common import process_cpu_seconds

    started = time.monotonic()
    deadline = started + timeout
    first_at = first_n = last_at = first_cpu = last_cpu = None
    seen = 0
    worker.start()
    try:
        while seen < target and time.monotonic() < deadline and worker.is_alive():
            snap = worker.snapshot()
            now = time.monotonic()
            if snap.messages_processed > seen:
                seen = snap.messages_processed
                first_at, first_n = (first_at, first_n) if first_at is not None else (now, seen)
                last_at, last_cpu = now, process_cpu_seconds()
                first_cpu = first_cpu if first_cpu is not None else last_cpu
            time.sleep(0.002)  # sampling period of the counters (bounded by the deadline)
    finally:
        worker.stop(30)
    snap = worker.snapshot()
    return {
        "seen": seen,
        "stored": snap.events_stored,
        "dead": snap.dead_lettered,
        "duplicates": snap.duplicates_skipped,
        "started": started,
        "first_at": first_at,
        "first_n": first_n,
        "last_at": last_at,
        "fatal": snap.fatal_error,
        # CPU of this process per event after the first batch: unlike the rate, it hardly moves
        # when other processes load the machine (the broker and PostgreSQL are not in it).
        "cpu_us_per_event": (
            round((last_cpu - first_cpu) / (seen - first_n) * 1e6, 1)
            if first_cpu is not None and last_cpu is not None and first_n is not None and seen > first_n
            else None
        ),
    }


def _profile(worker, produce_more) -> dict:
    """PROFILE_EVENTS fresh events through the sequential step (`poll_once()`: store not
    overlapped, so every stage shows) under cProfile; same group, so the join is a rejoin."""
    worker.open()
    try:
        deadline = time.monotonic() + 30.0
        while not worker.snapshot().assigned_partitions and time.monotonic() < deadline:
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
    topics=None,
    envelope_topic: str | None = None,
    **extra: object,
) -> dict:
    """One product run on `topic`. When `profile_if(rate)` is true, `produce_more(n)` adds n
    events to the topic and the SAME worker (no second group join) consumes them under cProfile.
    With `topics` (a TopicRegistry declaring `topic`), KAFKA_TOPICS is `envelope_topic` (default
    none: the declared topic alone is subscribed). `extra`: more settings (e.g. kafka_store_ahead="on")."""
    from bench.common import open_database
    from servicescheduler.consumers.running.worker import ConsumerWorker

    profile = None
    with fresh_database(backend) as (url, tmp):
        subscribed = topic if topics is None else (envelope_topic or "")
        settings = consumer_settings(tmp, url, bootstrap, subscribed, kafka_client=client, **extra)
        database = open_database(settings)
        # The product logs one WARNING line per malformed message on stdout: kept (it is part of
        # the cost), but sent to /dev/null so the harness output stays readable.
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            worker = ConsumerWorker(settings=settings, database=database, topics=topics)
            run = _run_thread(worker, count, max(60.0, count / 500))
            rate, seconds = _rate(run)
            if profile_if is not None and produce_more is not None and profile_if(rate):
                profile = _profile(ConsumerWorker(settings=settings, database=database), produce_more)
        rows = _row_count(database)
        dead_rows, notifications = _row_count(database, "DeadLetter"), _row_count(database, "Notification")
        database.dispose()
    entry: dict = {
        "events": run["seen"],
        "stored": run["stored"],
        "dead_lettered": run["dead"],
        "duplicates": run["duplicates"],
        "rows_in_db": rows,
        "dead_letter_rows": dead_rows,
        "notification_rows": notifications,
        "events_per_s": rate,
        "cpu_us_per_event": run.get("cpu_us_per_event"),
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
