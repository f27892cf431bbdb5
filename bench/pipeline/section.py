"""Report sections for benchmarks 4 to 9 (see `goals` for 1 to 3)."""

from __future__ import annotations

from bench.goals import goal
from bench.stats import ratio


def reaction_section(data: dict) -> dict:
    """Benchmark 4."""
    run, enable = data["run"], data["enable"]
    rows = [[name, s["n"], s["p50"], s["p99"], s["max"]] for name, s in (("POST /run", run), ("POST /enable", enable))]
    goals = [
        goal("POST /tasks/{name}/run → body starts, p99", "≤ 5 ms", f"{run['p99']} ms", (run["p99"] or 1e9) <= 5),
        goal(
            "POST /tasks/{name}/enable → first run, p99", "≤ 5 ms", f"{enable['p99']} ms", (enable["p99"] or 1e9) <= 5
        ),
    ]
    return {
        "id": 4,
        "title": "Reaction to the API",
        "goals": goals,
        "method": (
            "The real app under uvicorn on 127.0.0.1 in a subprocess; the client (httpx, keep-alive) "
            "in the bench process. Time from sending the request to the task body's first line "
            "(CLOCK_MONOTONIC in both processes). /run and /enable samples interleaved; each "
            "/enable targets a different disabled task that never ran (so it is due at once)."
        ),
        "tables": [{"columns": ["request", "n", "p50 ms", "p99 ms", "max ms"], "rows": rows}],
        "plots": [
            {
                "kind": "cdf",
                "file": "reaction.png",
                "series": data["raw_ms"],
                "title": "Request sent → task body starts",
                "xlabel": "ms",
            }
        ],
        "notes": [
            "Both include the HTTP round trip and a database write (/run writes an audit row "
            "before answering, /enable persists the flag before planning the run)."
        ],
    }


def async_section(data: dict) -> dict:
    """Benchmark 5."""
    variants = data["variants"]
    fresh, plain = variants["fresh loop (product)"], variants["plain call"]
    reference = variants["asyncio.run"]["p50"]
    rows = [[name, s["p50"], s["min"], s["max"], ratio(s["p50"], reference)] for name, s in variants.items()]
    goals = [
        goal(
            "async run overhead (fresh loop)",
            "≤ 150 µs",
            f"{fresh['p50']} µs",
            (fresh["p50"] or 1e9) <= 150,
            f"asyncio.run {reference} µs",
            ratio(fresh["p50"], reference),
        )
    ]
    return {
        "id": 5,
        "title": "Async overhead per run",
        "goals": goals,
        "method": (
            f"{data['iterations']} calls per variant of an empty coroutine, in 10 interleaved rounds; "
            f"per-call µs (p50/min/max over the round means). Plain call: {plain['p50']} µs."
        ),
        "tables": [{"columns": ["variant", "p50 µs", "min µs", "max µs", "ratio to asyncio.run"], "rows": rows}],
        "plots": [
            {
                "kind": "bar",
                "file": "async_overhead.png",
                "title": "Per-run overhead (µs, p50)",
                "ylabel": "µs",
                "series": {k: v["p50"] for k, v in variants.items()},
            }
        ],
    }


def web_section(data: dict) -> dict:
    """Benchmark 6."""
    idle, thread, proc = data["idle"], data["thread"], data["process"]
    rows = [
        [mode, s["n"], s["p50"], s["p99"], s["max"], ratio(s["p99"], idle["p99"])]
        for mode, s in (("idle", idle), ("CPU task in a thread", thread), ("CPU task in a process", proc))
    ]
    goals = [
        goal(
            'GET /tasks p99 with a CPU task on executor="process"',
            "≤ 1.5× idle",
            f"{proc['p99']} ms vs idle {idle['p99']} ms",
            (ratio(proc["p99"], idle["p99"]) or 1e9) <= 1.5,
            f"thread executor {thread['p99']} ms",
            ratio(proc["p99"], idle["p99"]),
        )
    ]
    return {
        "id": 6,
        "title": "Web latency under task load",
        "goals": goals,
        "method": (
            "GET /tasks (authenticated client, keep-alive) against the real app in a subprocess, in 5 "
            "interleaved rounds of idle / a 2 s pure-Python CPU task kept running in a worker thread / "
            'the same task on executor="process" (pool spawned before measuring).'
        ),
        "tables": [{"columns": ["load", "n", "p50 ms", "p99 ms", "max ms", "p99 / idle"], "rows": rows}],
        "plots": [
            {
                "kind": "cdf",
                "file": "web_latency.png",
                "series": data["raw_ms"],
                "logx": True,
                "title": "GET /tasks latency",
                "xlabel": "ms (log)",
            }
        ],
        "notes": [
            "With 2 cores, a CPU-bound child process takes one core; the server and the client share "
            "the other, so the process case is bounded by core count, not by the GIL."
        ],
    }


PRODUCT_PATHS = (
    "product → SQLite",
    "product → PostgreSQL",
    "product (confluent-kafka) → SQLite",
    "product (confluent-kafka) → PostgreSQL",
)


def _throughput_goals(topics: dict) -> list[dict]:
    """Issue 11's goals: ratios to raw kafka-python, confluent absolutes, malformed within 10 %."""
    clean, bad = topics.get("clean", {}), topics.get("1 % malformed", {})
    base = (clean.get("raw kafka-python") or {}).get("events_per_s")
    goals = []

    def add(metric: str, target: str, entry: dict, ok: bool, baseline: str, r: float | None) -> None:
        rate = entry.get("events_per_s")
        row = goal(metric, target, f"{rate} ev/s" if rate else entry.get("note", "not run"), ok, baseline, r)
        goals.append(row if rate is not None else {**row, "status": "NOT RUN"})

    for name, target in (("product → SQLite", 0.5), ("product → PostgreSQL", 0.4)):
        entry = clean.get(name) or {}
        r = ratio(entry.get("events_per_s"), base)
        add(
            f"{name} events/s vs raw kafka-python",
            f"≥ {target}",
            entry,
            (r or 0) >= target,
            f"raw kafka-python {base} ev/s",
            r,
        )
    for name, floor in (
        ("product (confluent-kafka) → SQLite", 50_000),
        ("product (confluent-kafka) → PostgreSQL", 40_000),
    ):
        entry = clean.get(name) or {}
        storage = (clean.get("storage alone → " + name.rsplit(" ", 1)[1]) or {}).get("events_per_s")
        rate = entry.get("events_per_s") or 0
        add(
            f"{name} events/s",
            f"≥ {floor:,}",
            entry,
            rate >= floor,
            f"storage alone {storage} ev/s",
            ratio(rate, storage),
        )
    for name in PRODUCT_PATHS:
        clean_rate, entry = (clean.get(name) or {}).get("events_per_s"), bad.get(name) or {}
        r = ratio(entry.get("events_per_s"), clean_rate)
        add(f"{name}, 1 % malformed vs clean", "≥ 0.9", entry, (r or 0) >= 0.9, f"clean {clean_rate} ev/s", r)
    return goals


def throughput_section(data: dict) -> dict:
    """Benchmark 7."""
    if data.get("skipped"):
        return _skipped(
            7,
            "Consumer throughput",
            data["skipped"],
            [("≥ 0.5 × raw kafka-python into SQLite", "sqlite"), ("≥ 0.4 × into PostgreSQL", "pg")],
        )
    rows, bars, goals = [], {}, []
    for topic, entries in data["topics"].items():
        base = (entries.get("raw kafka-python") or {}).get("events_per_s")
        for name, entry in entries.items():
            rate = entry.get("events_per_s")
            rows.append([topic, name, entry.get("events"), rate, ratio(rate, base), entry.get("note", "")])
            if topic == "clean":
                bars[name] = rate
    goals = _throughput_goals(data["topics"])
    tables = [
        {"columns": ["topic", "consumer", "events", "events/s", "ratio to raw kafka-python", "note"], "rows": rows}
    ]
    notes = list(data.get("notes", []))
    for name, prof in (data.get("profiles") or {}).items():
        tables.append(
            {
                "title": f"Profile: {name} — cumulative cost per event ({prof['events']} events under "
                f"cProfile, {prof['total_s']} s in poll_once)",
                "columns": ["part of poll_once", "µs/event (cProfile)", "% of poll_once"],
                "rows": prof["cumulative"],
            }
        )
        tables.append(
            {
                "title": f"Profile: {name} — top self time",
                "columns": ["function", "calls", "µs/event", "% of poll_once"],
                "rows": prof["self"],
            }
        )
    if data.get("profiles"):
        notes.append(
            "Profiles are taken right after the timed run by a second worker in the same group (a rejoin), "
            "driven with `poll_once()` on the calling thread, on freshly produced events of the clean topic, "
            "so that topic's database holds the timed run's rows too. "
            "cProfile inflates Python-heavy parts; read the percentages, not the absolute µs."
        )
    return {
        "id": 7,
        "title": "Consumer throughput",
        "goals": goals,
        "method": data.get("method", ""),
        "tables": tables,
        "plots": [
            {
                "kind": "bar",
                "file": "throughput.png",
                "series": bars,
                "logy": True,
                "title": "Events/s, clean topic (log)",
                "ylabel": "events/s",
            }
        ],
        "notes": notes + data.get("analysis", []),
    }


def e2e_section(data: dict) -> dict:
    """Benchmark 8."""
    if data.get("skipped"):
        return _skipped(8, "Event → notification latency", data["skipped"], [("p99 < 500 ms", "e2e")])
    product, seed = data["product"], data["seed_computed"]
    rows = [
        ["product (measured)", product["n"], product["p50"], product["p99"], product["max"]],
        ["seed design (computed)", seed["n"], seed["p50"], seed["p99"], seed["max"]],
    ]
    goals = [
        goal(
            "produce → webhook delivered, p99",
            "< 500 ms",
            f"{product['p99']} ms",
            (product["p99"] or 1e9) < 500,
            f"seed (computed) {seed['p99']} ms",
            ratio(product["p99"], seed["p99"]),
        )
    ]
    return {
        "id": 8,
        "title": "Event → notification latency",
        "goals": goals,
        "method": data.get("method", ""),
        "tables": [{"columns": ["design", "n", "p50 ms", "p99 ms", "max ms"], "rows": rows}],
        "plots": [
            {
                "kind": "cdf",
                "file": "e2e_latency.png",
                "logx": True,
                "xlabel": "ms (log)",
                "title": "Produce → notification delivered",
                "series": data.get("raw_ms", {}),
            }
        ],
        "notes": data.get("notes", []),
    }


def footprint_section(data: dict) -> dict:
    """Benchmark 9 (informational: no goal)."""
    rows = [
        [k, v.get("rss_mib"), v.get("threads"), v.get("seconds"), v.get("stop_s"), v.get("note", "")]
        for k, v in data.items()
        if isinstance(v, dict)
    ]
    goals = [
        goal(
            k,
            "(report)",
            f"{v.get('rss_mib')} MiB, {v.get('threads')} threads"
            + (f", /ready in {v['seconds']} s" if v.get("seconds") is not None else "")
            + (f"; {v['note']}" if v.get("note") else ""),
            None,
        )
        for k, v in data.items()
        if isinstance(v, dict)
    ]
    return {
        "id": 9,
        "title": "Footprint and start-up",
        "goals": goals,
        "method": (
            "The real service (`uvicorn server:app`, built-in tasks, SQLite in a temp dir) as a "
            "subprocess; RSS and threads from /proc; start-up = spawn → first 200 from /ready; stop = "
            "SIGTERM → exit (graceful, run in the background so it does not delay the next start). "
            "'After consuming': a fresh service with its own consumer group reads benchmark 7's clean "
            "topic to the end, then is probed."
        ),
        "tables": [{"columns": ["state", "RSS MiB", "threads", "/ready s", "stop s", "note"], "rows": rows}],
        "notes": [
            "Stopping while the consumer is still joining its group (Tansu delays a fresh group's join by "
            "~session timeout/2) or bootstrapping against an unreachable broker waits for those bounds "
            "(KAFKA_STOP_TIMEOUT_SECONDS, default 10 s)."
        ],
    }


def _skipped(number: int, title: str, reason: str, targets: list[tuple[str, str]]) -> dict:
    return {
        "id": number,
        "title": title,
        "method": reason,
        "goals": [{**goal(t, t, "not measured", None, reason[:80]), "status": "NOT RUN"} for t, _ in targets],
    }
