"""`python -m bench.soak [--minutes 10] [--quick]` (`make soak`): the real service under steady load.

A Tansu broker and `uvicorn server:app` run as subprocesses on 127.0.0.1 (SQLite in a temp dir);
20 tasks run every 1 s and a producer sends 500 events/s. Every 5 s the server's RSS, threads, open
descriptors, SQLite connections, events stored and runs recorded are sampled. The end compares what
was produced and run with what was stored and recorded, and docs/reliability.md gets the figures,
a plot and PASS/MISS (criteria in bench.soak.verdict). Raw JSON: bench/results/soak.json.
Exit code: 0 PASS, 1 MISS, 2 the harness could not run the soak.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.common import AUTH, ROOT, ensure_path

ensure_path()

import httpx  # noqa: E402

from bench.soak import report  # noqa: E402
from bench.soak.accounting import count_rows, final_accounting, history_vs_stats  # noqa: E402
from bench.soak.database import PostgresTarget, SqliteTarget, open_target, stop_postgres  # noqa: E402
from bench.soak.load import PacedProducer  # noqa: E402
from bench.soak.probe import sample_process  # noqa: E402
from bench.soak.service import PARTITIONS, SoakService, start_broker  # noqa: E402
from bench.soak.task_plan import TASK_COUNT, task_names  # noqa: E402
from bench.soak.verdict import memory_growth, verdict  # noqa: E402

DRAIN_TIMEOUT_S = 120.0
Target = SqliteTarget | PostgresTarget


class SoakError(RuntimeError):
    """The soak could not run (broker or server did not start, server died)."""


@dataclass(frozen=True)
class SoakConfig:
    seconds: float = 600.0
    rate: float = 500.0
    interval_s: float = 5.0
    warmup_s: float = 60.0
    # Catch-ups: the consumer is disabled for `pause_s` at each of these fractions of the load, so
    # it works off a backlog of rate × pause_s events in full batches. Every deployment has
    # catch-ups (restarts, deploys, a slow broker); their batches are the consumer's largest working
    # set, which the process keeps (Python and glibc hold freed memory for reuse). The first one
    # comes before the baseline (warm-up = it + 60 s), so growth measured after it is a leak, not
    # the first full batch; the second, mid-run, shows whether another one grows RSS again.
    pause_s: float = 20.0
    pauses_at: tuple[float, ...] = (0.0, 0.5)
    bad_every: int = 500
    quick: bool = False
    tasks: int = TASK_COUNT
    partitions: int = PARTITIONS
    database: str = "SQLite"  # or "PostgreSQL"


def parse_args(argv: list[str] | None = None) -> tuple[SoakConfig, Path]:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="load duration (default 10)")
    parser.add_argument("--rate", type=float, default=500.0, help="events per second (default 500)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples (default 5)")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 30 s at 100 events/s, samples every 2 s, 10 s warm-up"
    )
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="PostgreSQL instead of SQLite (BENCH_DATABASE_URL's server, else a throw-away cluster)",
    )
    parser.add_argument("--out", type=Path, default=ROOT, help="where docs/ and bench/results/ are written")
    args = parser.parse_args(argv)
    database = "PostgreSQL" if args.postgres else "SQLite"
    if args.quick:
        quick = SoakConfig(
            seconds=30, rate=100, interval_s=2, warmup_s=10, bad_every=100, quick=True, database=database, pause_s=0
        )
        return quick, args.out
    if not 0.2 <= args.minutes <= 240 or not 1 <= args.rate <= 20_000 or not 0.5 <= args.interval <= 60:
        parser.error("--minutes 0.2..240, --rate 1..20000, --interval 0.5..60")
    pause = min(SoakConfig.pause_s, args.minutes * 60 / 20)
    warmup = min(60.0, args.minutes * 60 / 4) + pause
    config = SoakConfig(
        seconds=args.minutes * 60,
        rate=args.rate,
        interval_s=args.interval,
        warmup_s=warmup,
        database=database,
        pause_s=pause,
    )
    return config, args.out


def take_sample(
    t_s: float, service: SoakService, target: Target, client: httpx.Client, producer: PacedProducer
) -> dict[str, Any]:
    """/proc first (the harness's own requests must not be in flight), then the consumer and the DB."""
    sample: dict[str, Any] = {"t_s": round(t_s, 2), **sample_process(service.pid, target.file).as_dict()}
    sample.update(service.heap_sample())
    if target.file is None:
        sample["db_connections"] = target.server_connections()
    sample.update(target.sizes())
    consumer: dict[str, Any] = {}
    asked = time.perf_counter()
    try:
        # A fresh connection per sample: uvicorn closes idle keep-alive connections after 5 s, the
        # sampling interval, so reusing one races the server's close (ReadError, not a server fault).
        consumer = client.get("/consumer", headers={"Connection": "close"}).json()
    except (httpx.HTTPError, ValueError) as exc:
        sample["api_error"] = f"GET /consumer: {type(exc).__name__}"
    sample["api_ms"] = round((time.perf_counter() - asked) * 1000, 1)
    lag = consumer.get("lag") or {}
    sample.update(
        events_stored=consumer.get("events_stored"),
        dead_lettered=consumer.get("dead_lettered"),
        consumer_state=consumer.get("state"),
        lag=sum(v for v in lag.values() if v is not None) if lag else None,  # None: not known yet
        runs_recorded=count_rows(target.connect, "ss_task_runs"),
        produced=producer.acked,
    )
    return sample


def sample_during_load(
    config: SoakConfig,
    service: SoakService,
    target: Target,
    client: httpx.Client,
    producer: PacedProducer,
    started: float,
) -> list[dict[str, Any]]:
    """One sample every interval from the start of the load (`started`) to its end (bounded by the count)."""
    samples = []
    for index in range(int(config.seconds // config.interval_s) + 1):
        delay = started + index * config.interval_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if not service.alive():
            raise SoakError(
                f"the server exited with code {service.proc.poll() if service.proc else None} "
                f"after {time.monotonic() - started:.0f} s"
            )
        samples.append(take_sample(time.monotonic() - started, service, target, client, producer))
        print(_progress(samples[-1]), file=sys.stderr, flush=True)
    return samples


def _progress(sample: dict[str, Any]) -> str:
    return (
        f"soak t={sample['t_s']:6.0f}s rss={sample['rss_mib']} MiB (anon {sample['rss_anon_mib']}) "
        f"db={sample.get('db_mib')} MiB threads={sample['threads']} "
        f"fds={sample['fds']} conns={sample['db_connections']} produced={sample['produced']} "
        f"stored={sample['events_stored']} runs={sample['runs_recorded']}"
    )


def wait_drained(client: httpx.Client, produced: int, timeout: float = DRAIN_TIMEOUT_S) -> float | None:
    """Waits until the consumer processed every acknowledged message and its lag is 0; seconds or None."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            body = client.get("/consumer").json()
            if body.get("messages_processed", 0) >= produced and not any((body.get("lag") or {}).values()):
                return round(time.monotonic() - started, 2)
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    return None


def run(config: SoakConfig) -> dict[str, Any]:
    """Runs the soak; returns the result (samples, accounting, verdict). Raises SoakError."""
    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    topic = f"soak-{uuid.uuid4().hex[:6]}"
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "config": asdict(config),
        "samples": [],
        "notes": [],
    }
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        try:
            target = open_target(config.database == "PostgreSQL", workdir)
        except RuntimeError as exc:
            raise SoakError(str(exc)) from None
        if isinstance(target, PostgresTarget):
            cleanup.callback(stop_postgres)
        cleanup.callback(target.drop)
        broker = start_broker(topic)
        cleanup.callback(broker.stop)
        service = SoakService(workdir, broker.bootstrap, topic, target.url).start()
        cleanup.callback(service.stop)
        producer = PacedProducer(broker.bootstrap, topic, config.rate, config.seconds, bad_every=config.bad_every)
        cleanup.callback(producer.stop)
        tasks = drive(config, service, target, producer, result)
        service.stop()  # SIGTERM: the recorder flushes, the consumer commits; then count
        result["server"] = {
            "stop_s": service.stop_seconds,
            "exit_code": service.exit_code,
            "consumer_restarts": result.pop("consumer_restarts"),
            **_log_fields(service),
        }
        result["accounting"] = final_accounting(
            target.connect, service.runs_file, producer.acked_ids, producer.acked_bad, task_names()
        )
    result["history_vs_stats"] = history_vs_stats(result["accounting"]["runs_per_task"], tasks)
    result["verdict"] = verdict(result["samples"], result["accounting"], config.warmup_s)
    result["memory_growth"] = memory_growth(result["samples"], config.warmup_s)
    return result


def drive(
    config: SoakConfig, service: SoakService, target: Target, producer: PacedProducer, result: dict[str, Any]
) -> list[dict[str, Any]]:
    """Load and sample, then wait for the consumer to catch up; returns GET /tasks before the stop."""
    with httpx.Client(base_url=service.base_url, timeout=10) as client:
        if not service.wait_ready(client):
            raise SoakError("the server was not ready (or had no partitions) in time:\n" + _tail(service))
        started = time.monotonic()
        producer.start()
        catchups = CatchUps(service.base_url, config, started).start()
        try:
            result["samples"] = sample_during_load(config, service, target, client, producer, started)
        finally:
            result["catchups"] = catchups.join()
        if not producer.join(timeout=90):
            result["notes"].append("the producer did not finish within 90 s of the load's end")
        result["load"] = producer.counts()
        result["drain_s"] = drained = wait_drained(client, producer.acked)
        if drained is None:
            result["notes"].append(f"the consumer had not caught up {DRAIN_TIMEOUT_S:.0f} s after the load")
        last = take_sample(time.monotonic() - started, service, target, client, producer)
        result["samples"].append({**last, "phase": "drained"})
        result["consumer_restarts"] = client.get("/consumer").json().get("restarts")
        tasks: list[dict[str, Any]] = client.get("/tasks").json()
        return tasks


class CatchUps:
    """Disables the consumer for `pause_s` at each of `pauses_at` (fractions of the load), on a
    thread of its own; `join()` returns what happened (bounded: one pause per entry)."""

    def __init__(self, base_url: str, config: SoakConfig, started: float) -> None:
        self.base_url = base_url
        self.config = config
        self.started = started
        self.done: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-catchups", daemon=True)

    def start(self) -> CatchUps:
        if self.config.pause_s > 0:
            self._thread.start()
        return self

    def join(self) -> list[dict[str, Any]]:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        return self.done

    def _run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=30, headers=AUTH) as client:
            for fraction in self.config.pauses_at:
                at = self.started + fraction * self.config.seconds
                if self._stop.wait(max(0.0, at - time.monotonic())):
                    return
                entry: dict[str, Any] = {"at_s": round(time.monotonic() - self.started, 1)}
                try:
                    client.post("/consumer/disable", headers={"Connection": "close"}).raise_for_status()
                    stopped = self._stop.wait(self.config.pause_s)
                    body = client.post("/consumer/enable", headers={"Connection": "close"}).json()
                    paused = time.monotonic() - self.started - entry["at_s"]
                    entry.update(paused_s=round(paused, 1), state=body.get("state"))
                except (httpx.HTTPError, ValueError) as exc:
                    entry["error"] = f"{type(exc).__name__}: {exc}"
                    stopped = self._stop.is_set()
                self.done.append(entry)
                if stopped:
                    return


def _log_fields(service: SoakService) -> dict[str, Any]:
    summary = service.log_summary()
    return {"log_levels": summary["levels"], "log_top": summary["top"]}


def _tail(service: SoakService, limit: int = 2000) -> str:
    try:
        return service.log_path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


def write_outputs(result: dict[str, Any], out: Path) -> Path:
    """JSON, plot and markdown under `out` (the repository by default); returns the markdown path."""
    json_path = report.write_json(result, out / "bench" / "results")
    plot_path = report.plot(result["samples"], result["config"]["warmup_s"], out / "docs" / "img" / report.PLOT_NAME)
    return report.write_doc(result, out / "docs" / "reliability.md", plot_path, json_path, out)


def main(argv: list[str] | None = None) -> int:
    config, out = parse_args(argv)
    try:
        result = run(config)
    except SoakError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 2
    doc = write_outputs(result, out)
    for row in result["verdict"]["criteria"]:
        print(f"soak: {row['status']:>4}  {row['name']}: {row['measured']}")
    print(f"soak: {result['verdict']['overall']} — {doc}")
    return 0 if result["verdict"]["overall"] == "PASS" else 1
