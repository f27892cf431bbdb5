"""Where the consumer's time goes: a cProfile of `poll_once` reduced to the cost per event of its
stages (fetch, decode, store, commit...) and the top self-time functions, without machine paths."""

from __future__ import annotations

import cProfile
import os

_PROFILE_KEYS = (  # (file suffix, function, label)
    ("consumers/running/worker.py", "poll_once", "poll_once (total)"),
    ("kafka/consumer/group.py", "poll", "KafkaConsumer.poll (fetch)"),
    ("consumers/running/worker.py", "_decode", "decode + validation (msgspec fast path)"),
    ("consumers/storing/store.py", "store_batch", "store_batch (one transaction)"),
    ("consumers/storing/store.py", "_run_handler", "handlers (build row dicts)"),
    ("storage/events.py", "insert_new_events", "bulk insert of new events (COPY / multi-row INSERT)"),
    ("~", "<method 'encode' of 'msgspec.json.Encoder' objects>", "  JSON text of `data` (msgspec)"),
    ("consumers/storing/store.py", "_insert_ignore", "INSERT … ON CONFLICT (notifications, dead letters; Core)"),
    ("sqlalchemy/engine/base.py", "_commit_impl", "database commit"),
    ("consumers/running/worker.py", "_commit_pending", "Kafka offset commit (sync round trip)"),
    ("consumers/running/status.py", "observe", "status: poll time, assignment, lag"),
    ("consumers/running/worker.py", "_account", "_account (counters, metrics)"),
)


def summarize_profile(profiler: cProfile.Profile, events: int) -> dict:
    """Cumulative time of the interesting functions and the top self-time functions, µs/event."""
    profiler.create_stats()  # what pstats.Stats(profiler) does; typeshed types the result only here
    stats = profiler.stats  # {(file, line, func): (cc, nc, tt, ct, callers)}
    total = (
        next(
            (v[3] for k, v in stats.items() if k[0].endswith("consumers/running/worker.py") and k[2] == "poll_once"),
            None,
        )
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


def profile_findings(profiles: dict) -> list[str]:
    """One line per profile: the biggest parts of poll_once, from the cumulative profile table."""
    lines = []
    for name, prof in profiles.items():
        parents = ("poll_once (total)", "store_batch (one transaction)")
        parts = sorted(
            ((row[2], row[0].strip()) for row in prof["cumulative"] if row[0].strip() not in parents), reverse=True
        )
        lines.append(
            f"Top three costs ({name}): " + "; ".join(f"{label} {pct} %" for pct, label in parts[:3]) + " of poll_once."
        )
    return lines
