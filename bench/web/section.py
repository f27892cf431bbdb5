"""Report sections of benchmarks 4 (reaction to the API) and 6 (web latency under task load)."""

from __future__ import annotations

from bench.report import goal
from bench.stats import ratio


def reaction_section(data: dict) -> dict:
    """Benchmark 4."""
    run, enable = data["run"], data["enable"]
    parts = [
        ("POST /run", run),
        ("POST /enable", enable),
        ("floor: HTTP alone (request sent → a sync route's body)", data.get("http")),
        ("floor: /run's database write alone (a lease, server side)", data.get("lease")),
    ]
    rows = [[name, s["n"], s["p50"], s["p99"], s["max"]] for name, s in parts if s]
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
            "What a reaction is made of, each floor measured in the same run, interleaved with the "
            "samples: the request reaching a sync route (uvicorn, FastAPI's thread pool), then the "
            "database writes the task's start waits for. /run takes the task's lease (one write "
            "transaction: in a cluster, a manual run anywhere must answer 409); /enable persists the "
            "flag, then the loop claims the slot and takes the lease (two). The app runs with "
            "CLUSTER_ENABLED=true (the default) on SQLite. A start never waits for the audit row or "
            "the run record: both go through the recorder thread."
        ],
    }


def load_section(data: dict) -> dict:
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
            'the same task on executor="process" (pool spawned before measuring). A 2 s run cannot be '
            "stopped: each round's samples start once the previous load's run has ended."
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
