"""Report section of benchmark 9 (footprint and start-up)."""

from __future__ import annotations

from bench.report import goal


def section(data: dict) -> dict:
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
