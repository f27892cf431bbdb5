"""Benchmark 13: run overhead and consumer throughput with tracing off vs on.

Off is what a host without an OpenTelemetry SDK gets (the API's proxy provider); on is the SDK
with a span processor that hands every span to an exporter doing nothing, so the cost shown is
the service's own span work, not an exporter's. A global tracer provider can be set once per
process: each sample is a fresh child process (`python -m bench.tracing.measure VARIANT KIND N`),
off and on alternating round by round, so machine noise hits both alike.

- run: µs per sync no-op task run through RunLauncher (what every run goes through: span,
  outcome, report), in the calling thread.
- consume: events per second through ConsumerWorker.process (decode, handlers, one SQLite
  transaction per batch of 1000), no broker; every record carries a `traceparent` header.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, ensure_path
from bench.stats import summarize

SIZES = {
    "full": {"run": 20_000, "consume": 20_000, "rounds": 5},
    "quick": {"run": 5_000, "consume": 5_000, "rounds": 3},
}
BATCH = 1000
TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _install_sdk() -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class Discard(SpanExporter):
        def export(self, spans: object) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Discard()))
    trace.set_tracer_provider(provider)


def _runs(n: int) -> float:
    """µs per run of a no-op sync task through RunLauncher._execute (after a warm-up)."""
    from servicescheduler.scheduling.executor import TaskExecutor
    from servicescheduler.scheduling.launcher import RunLauncher, new_run_id
    from servicescheduler.scheduling.registry import build_spec
    from servicescheduler.scheduling.tracked import TrackedTask
    from servicescheduler.scheduling.triggers import every
    from servicescheduler.settings import settings_from
    from servicescheduler.storage.records import RunRecord

    spec = build_spec("noop", lambda: None, trigger=every(1).hours)
    task = TrackedTask.restore(spec, None, settings_from())
    executor = TaskExecutor(1, 1)
    launcher = RunLauncher(executor, time.time, lambda t, r: None, lambda t, r, o: None)
    try:
        for phase in (n // 10, n):
            started = time.perf_counter()
            for _ in range(phase):
                launcher._execute(task, RunRecord(new_run_id(), "noop", "manual", None, time.time()))
            elapsed = time.perf_counter() - started
    finally:
        executor.shutdown()
    return elapsed / n * 1e6


class _Record:
    __slots__ = ("headers", "key", "offset", "timestamp", "value")

    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.timestamp = 1_700_000_000_000
        self.key = f"e{offset}".encode()
        self.value = json.dumps({"id": f"e{offset}", "type": "order.created", "data": {"i": offset}}).encode()
        self.headers = [("traceparent", TRACEPARENT)]


def _consume(n: int) -> float:
    """Events per second through ConsumerWorker.process, batches of BATCH, into a fresh SQLite."""
    from kafka.structs import TopicPartition

    from servicescheduler.consumers.running.worker import ConsumerWorker
    from servicescheduler.settings import settings_from
    from servicescheduler.storage.db import Database
    from servicescheduler.storage.migrate import upgrade

    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_from(database_url=f"sqlite:///{Path(tmp) / 'bench.db'}", kafka_group_id="bench")
        database = Database(settings)
        upgrade(database.engine)
        worker = ConsumerWorker(settings=settings, database=database)
        tp = TopicPartition("events", 0)
        batches = [{tp: [_Record(o) for o in range(start, start + BATCH)]} for start in range(0, n, BATCH)]
        worker.process(batches[0])  # warm-up (its events are then duplicates: not timed)
        started = time.perf_counter()
        for records in batches[1:]:
            result = worker.process(records)
            worker._stored(records, result, 0.0)  # what the poll loop does next: ends the spans
        elapsed = time.perf_counter() - started
        database.dispose()
    return (len(batches) - 1) * BATCH / elapsed


def _child(variant: str, kind: str, n: int) -> float:
    """One sample in a fresh process (the global tracer provider is set once per process)."""
    command = [sys.executable, "-m", "bench.tracing.measure", variant, kind, str(n)]
    output = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=True).stdout
    return float(output.strip().splitlines()[-1])


def measure(quick: bool) -> dict:
    """Per kind and variant: the samples' summary (run: µs per run; consume: events/s)."""
    size = SIZES["quick" if quick else "full"]
    samples: dict[str, dict[str, list[float]]] = {kind: {"off": [], "on": []} for kind in ("run", "consume")}
    for _ in range(size["rounds"]):
        for kind in samples:
            for variant in ("off", "on"):
                samples[kind][variant].append(_child(variant, kind, size[kind]))
    return {
        "rounds": size["rounds"],
        "runs": size["run"],
        "events": size["consume"],
        "run_us": {v: summarize(s, 1, 2) for v, s in samples["run"].items()},
        "consume_per_s": {v: summarize(s, 1, 0) for v, s in samples["consume"].items()},
    }


if __name__ == "__main__":
    ensure_path()
    variant_arg, kind_arg, n_arg = sys.argv[1:4]
    if variant_arg == "on":
        _install_sdk()
    value = _runs(int(n_arg)) if kind_arg == "run" else _consume(int(n_arg))
    print(round(value, 3))
