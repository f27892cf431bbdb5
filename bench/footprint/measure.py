"""Benchmark 9: RSS and threads of the running service, and its start-up time to /ready.

The real service (bench.service: `python -m uvicorn server:app`, built-in tasks, SQLite in a temp dir)
runs as a subprocess on 127.0.0.1, with the bench's broker, and with an unreachable broker address;
then (`after_consume`) once it consumed benchmark 7's clean topic.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable

from bench.pipeline.consumer import group_timing, set_quick
from bench.pipeline.events import EVENTS, LAST_TOPICS, create_topic, produce
from bench.service import READY_TIMEOUT_S, Service


def _startup(bootstrap: str | None, label: str, idle_s: float, stoppers: list) -> dict:
    """Start-up time and idle footprint; the service is stopped in the background (see `stoppers`)."""
    service = Service(bootstrap)
    try:
        seconds = service.wait_ready()
        time.sleep(idle_s)  # idle
        probe = service.probe()
        note = (
            ""
            if seconds is not None
            else f"no 200 from /ready within {READY_TIMEOUT_S:.0f} s (last status {service.last_status})"
        )
        entry = {"seconds": None if seconds is None else round(seconds, 3), **probe, "note": note}
        stoppers.append((entry, service, stop_in_background(service)))
        return entry
    except BaseException:
        service.stop()
        raise


def stop_in_background(service: Service) -> threading.Thread:
    """Graceful stop (SIGTERM, bounded) in a thread, timed into `service.stop_seconds`: a stop
    waits mostly on timeouts (consumer leaving its group, bootstrap bound), so the next
    measurement need not wait for it."""

    def run() -> None:
        started = time.monotonic()
        service.stop()
        service.stop_seconds = round(time.monotonic() - started, 2)

    thread = threading.Thread(target=run, name="bench-service-stop", daemon=True)
    thread.start()
    return thread


def measure(quick: bool, bootstrap: str | None, after_consume: Callable[[], dict] | None = None) -> dict:
    """Start-up and idle footprint without Kafka, with the bench broker and with an unreachable one.

    `after_consume()` (optional, from the pipeline) makes a service consume the
    benchmark's events and returns a note; the footprint is probed afterwards.
    """
    from devtools.tansu import free_port

    idle_s = 0.5 if quick else 2.0
    stoppers: list[tuple[dict, Service, threading.Thread]] = []
    out = {"idle, Kafka disabled": _startup(None, "no kafka", idle_s, stoppers)}
    if bootstrap:
        out["idle, broker reachable"] = _startup(bootstrap, "broker", idle_s, stoppers)
    out["start-up, broker unreachable"] = _startup(f"127.0.0.1:{free_port()}", "unreachable", idle_s, stoppers)
    if after_consume is not None:
        out["after consuming the benchmark events"] = after_consume()
    for entry, service, thread in stoppers:
        thread.join(30)
        entry["stop_s"] = service.stop_seconds
    return out


# ------------------------------------------------------------------ benchmark 9
def after_consume(quick: bool, bootstrap: str) -> dict:
    """RSS/threads of the real service once it consumed (7)'s clean topic (or a fresh one)."""
    import httpx

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
            "KAFKA_SESSION_TIMEOUT_MS": str(group_timing()[0]),
            "KAFKA_HEARTBEAT_INTERVAL_MS": str(group_timing()[1]),
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
