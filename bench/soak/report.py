"""Writes the soak's outputs: raw JSON (bench/results/), a plot (docs/img/) and docs/reliability.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.common import machine_info
from bench.report import _table, versions
from bench.soak.faults import fault_rows

PLOT_NAME = "soak.png"
# Text between these markers is written by people (what a MISS was traced to) and kept when the
# page is regenerated; everything else on the page is generated.
ANALYSIS_START = "<!-- analysis: hand-written, kept when `make soak` regenerates this page -->"
ANALYSIS_END = "<!-- end of analysis -->"
DEFAULT_ANALYSIS = "_No analysis written for this run yet._"
LABELS = {
    "rss_mib": "RSS",
    "rss_anon_mib": "RSS anonymous",
    "rss_file_mib": "RSS file-backed",
    "db_mib": "database size",
    "fds": "open fds",
    "db_connections": "database connections",
    "produced": "events produced (acked)",
    "events_stored": "events stored",
    "runs_recorded": "runs recorded",
    "threads": "threads",
}
JSON_NAME = "soak.json"


def write_json(result: dict[str, Any], results_dir: Path) -> Path:
    """bench/results/soak.json: settings, every sample, the accounting and the verdict."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / JSON_NAME
    payload = {**result, "machine": {k: v for k, v in machine_info().items() if k != "host"}, "versions": versions()}
    path.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    return path


def plot(samples: list[dict[str, Any]], warmup_s: float, path: Path) -> Path | None:
    """Four panels over time: memory (RSS and its parts, database size); threads; fds and database
    connections; events stored and runs recorded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s["t_s"] / 60 for s in samples]
    panels = (
        ("MiB", ("rss_mib", "rss_anon_mib", "rss_file_mib", "db_mib")),
        ("threads", ("threads",)),
        ("descriptors", ("fds", "db_connections")),
        ("rows", ("produced", "events_stored", "runs_recorded")),
    )
    fig, axes = plt.subplots(2, 2, figsize=(10, 6), dpi=100, sharex=True)
    try:
        for ax, (title, keys) in zip(axes.flat, panels, strict=True):
            for key in keys:
                ax.plot(minutes, [s.get(key) for s in samples], marker=".", label=LABELS[key])
            ax.axvline(warmup_s / 60, color="grey", linestyle="--", linewidth=0.8)
            ax.set_title(title, fontsize=10)
            ax.grid(alpha=0.3)
            if len(keys) > 1:
                ax.legend(fontsize=8)
            if title != "rows":  # absolute scale: a flat line must look flat
                ax.set_ylim(bottom=0)
        for ax in axes[1]:
            ax.set_xlabel("minutes since the load started (dashed: end of warm-up)")
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
        return path
    finally:
        plt.close(fig)


def _criteria_table(verdict: dict[str, Any]) -> list[str]:
    rows = [
        [c["name"], c["criterion"], c["start"], c["end"], c["measured"], f"**{c['status']}**"]
        for c in verdict["criteria"]
    ]
    return _table(["check", "criterion", "baseline / produced", "end / accounted", "measured", "status"], rows)


def _run_lines(result: dict[str, Any]) -> list[str]:
    acc, load, cfg = result.get("accounting") or {}, result.get("load") or {}, result["config"]
    first, last = (result["samples"][0], result["samples"][-1]) if result["samples"] else ({}, {})
    lines = [
        f"- Load: {load.get('acked_good', 0):,} events and {load.get('acked_bad', 0):,} malformed messages "
        f"acknowledged by the broker in {load.get('elapsed_s')} s (target {cfg['rate']:.0f}/s for "
        f"{cfg['seconds']:.0f} s; send failures: {load.get('failed', 0)}).",
        f"- Stored {acc.get('stored', '–'):,} events, dead-lettered {acc.get('dead_lettered', '–')}; produced ids "
        f"missing from `events`: {acc.get('missing_ids', '–')}; stored ids never produced: "
        f"{acc.get('unexpected_ids', '–')}."
        if acc
        else "- Final accounting not done (run cut short).",
        f"- Start → end (first and last sample): RSS {first.get('rss_mib')} → {last.get('rss_mib')} MiB, threads "
        f"{first.get('threads')} → {last.get('threads')}, fds {first.get('fds')} → {last.get('fds')}, database "
        f"connections {first.get('db_connections')} → {last.get('db_connections')}.",
    ]
    if acc:
        lines.append(
            f"- Task runs: {acc['runs_counted']:,} counted by the soak tasks themselves, "
            f"{acc['runs_unrecorded']} without a `task_runs` row; outcomes of the soak tasks' rows "
            f"{acc['soak_run_outcomes']}; slots run twice: {acc['slots_run_twice']}."
        )
    lines += _memory_and_api_lines(result)
    short = [r for r in result.get("history_vs_stats") or [] if r["short"]]
    lines.append(
        f"- Runs the scheduler counted (GET /tasks just before SIGTERM) with no row after the stop: "
        f"{sum(r['short'] for r in short)} ({', '.join(r['task'] for r in short) or 'none'})."
    )
    server = result.get("server") or {}
    lines.append(
        f"- Consumer restarts: {server.get('consumer_restarts')}; server stop (SIGTERM) took "
        f"{server.get('stop_s')} s, {_exit(server.get('exit_code'))}; server log lines by level "
        f"{server.get('log_levels')}."
    )
    lines += [f"  - `{event}`: {count}" for event, count in server.get("log_top") or []]
    return lines


def _memory_and_api_lines(result: dict[str, Any]) -> list[str]:
    lines = []
    growth = result.get("memory_growth")
    if growth:
        lines.append(
            f"- Memory after the warm-up: RSS {growth['rss_mib']:+} MiB (anonymous {growth['rss_anon_mib']:+}, "
            f"file-backed {growth['rss_file_mib']:+}, shared {growth['rss_shmem_mib']:+}); RSS grew "
            f"{growth['first_third_mib_per_min']} MiB/min in the first third of that period and "
            f"{growth['last_third_mib_per_min']} MiB/min in the last third."
        )
        if growth.get("sqlite_mib") is not None:
            first = _first_after_warmup(result)
            lines.append(
                f"- Whose memory (the server's heap probe, `bench/soak/heap.py`), growth after the warm-up: "
                f"SQLite {growth['sqlite_mib']:+} MiB (from {first.get('sqlite_mib')}), glibc malloc in use "
                f"{growth['malloc_in_use_mib']:+} MiB, free in malloc's arenas {growth['malloc_free_mib']:+} MiB."
            )
    lines += _catchup_lines(result)
    timed = [s["api_ms"] for s in result["samples"] if s.get("api_ms") is not None and not s.get("api_error")]
    errors = [s["api_error"] for s in result["samples"] if s.get("api_error")]
    if timed:
        kinds = f": {', '.join(sorted(set(errors)))}" if errors else ""
        lines.append(
            f"- GET /consumer during the soak: median {sorted(timed)[len(timed) // 2]} ms, max {max(timed)} ms; "
            f"failed {len(errors)} of {len(result['samples'])} times{kinds}."
        )
    return lines


def _catchup_phrase(cfg: dict[str, Any]) -> str:
    if not cfg.get("pause_s"):
        return ""
    at = " and ".join(f"{fraction * cfg['seconds'] / 60:.0f} min" for fraction in cfg["pauses_at"])
    return (
        f"Catch-ups: at {at} the consumer is disabled for {cfg['pause_s']:.0f} s (POST /consumer/disable, "
        f"then /enable), so it works off a backlog of about {cfg['rate'] * cfg['pause_s']:,.0f} events in full "
        f"batches, as after any restart or deploy; their batches are its largest working set, which the "
        f"process keeps for reuse. The first is part of the warm-up, so later growth is not that high-water "
        f"mark; the second shows whether another catch-up grows memory again. "
    )


def _catchup_lines(result: dict[str, Any]) -> list[str]:
    """RSS just before the mid-run catch-up and the highest within 2 minutes after it."""
    lines = []
    for entry in (result.get("catchups") or [])[1:]:
        before = [s for s in result["samples"] if s["t_s"] <= entry["at_s"] and s.get("rss_mib") is not None]
        end = entry["at_s"] + entry.get("paused_s", 0)
        after = [s["rss_mib"] for s in result["samples"] if end <= s["t_s"] <= end + 120 and s.get("rss_mib")]
        if before and after:
            step = round(max(after) - before[-1]["rss_mib"], 1)
            lines.append(
                f"- Mid-run catch-up at {entry['at_s']:.0f} s (consumer off {entry.get('paused_s')} s): RSS "
                f"{before[-1]['rss_mib']} MiB before, at most {max(after)} MiB in the 2 minutes after ({step:+} MiB)."
            )
    return lines


def _first_after_warmup(result: dict[str, Any]) -> dict[str, Any]:
    warmup = result["config"]["warmup_s"]
    return next((s for s in result["samples"] if s["t_s"] >= warmup and s.get("sqlite_mib") is not None), {})


def _exit(code: int | None) -> str:
    if code == -15:
        return "it exited on the SIGTERM it was sent (uvicorn re-raises it after a clean shutdown)"
    return f"exit code {code}"


def _database_phrase(cfg: dict[str, Any]) -> str:
    if cfg.get("database") == "PostgreSQL":
        return "PostgreSQL (a database created for the run)"
    return "SQLite in a temp directory"


def _connections_phrase(cfg: dict[str, Any]) -> str:
    if cfg.get("database") == "PostgreSQL":
        return "sessions on its database in `pg_stat_activity`"
    return "descriptors on the SQLite file"


def render(result: dict[str, Any], plot_rel: str | None, json_rel: str, analysis: str = "") -> str:
    """The markdown of docs/reliability.md."""
    cfg, verdict = result["config"], result["verdict"]
    info = machine_info()
    lines = [
        "# Reliability",
        "",
        "Two kinds of proof: a soak of the real service under steady load (`make soak`), and the faults the "
        "test suite injects (`make test`).",
        "",
        f"## Soak: {verdict['overall']}",
        "",
        f"Generated by `python -m bench.soak{' --quick' if cfg['quick'] else ''}` (`make soak`) on "
        f"{result['date']}, {info['cpus']} CPUs ({info['cpu_model'] or 'unknown CPU'}, shared with other work), "
        f"Python {info['python']}. Raw samples: `{json_rel}`.",
        "",
        f"**Method.** A Tansu broker and the real server (`python -m uvicorn server:app`, one process) on "
        f"127.0.0.1, {_database_phrase(cfg)}, the built-in tasks plus {cfg['tasks']} tasks every 1 s "
        f"(`bench/soak/tasks.py`, loaded with TASK_MODULES; every 4th is `async def`; each counts its own runs "
        f"in a file). A kafka-python producer sends {cfg['rate']:.0f} events/s for {cfg['seconds'] / 60:.1f} "
        f"min to a {cfg['partitions']}-partition topic (1 in {cfg['bad_every']} malformed). Every "
        f"{cfg['interval_s']:.0f} s the harness reads the server's RSS, threads and open descriptors from "
        f"/proc/<pid>/, its database connections ({_connections_phrase(cfg)}), the consumer's "
        f"`events_stored` (GET /consumer) and the rows in `task_runs`. After the load it waits for the "
        f"consumer to catch up, stops the server with SIGTERM and compares, by id, what was produced with "
        f"`events` + `dead_letters`, and the runs the tasks counted with `task_runs`. "
        f"{_catchup_phrase(cfg)}The baseline of the "
        f"resource checks is the first sample at or after {cfg['warmup_s']:.0f} s.",
        "",
        *_criteria_table(verdict),
        "",
        *_run_lines(result),
        "",
    ]
    if plot_rel:
        lines += [f"![soak: RSS, threads, descriptors and rows over time]({plot_rel})", ""]
    for note in result.get("notes", []):
        lines.append(f"- {note}")
    lines += ["", ANALYSIS_START, analysis.strip("\n") or DEFAULT_ANALYSIS, ANALYSIS_END]
    lines += [
        "",
        "## Faults the test suite injects",
        "",
        "Generated from `bench/soak/faults.py` (tests/test_soak_smoke.py checks that every test named "
        "there exists). Test ids are relative to `tests/`.",
        "",
    ]
    lines += _table(["fault", "how it is injected", "tests", "what it proves"], fault_rows())
    return "\n".join(lines).rstrip() + "\n"


def kept_analysis(doc: Path) -> str:
    """The hand-written text between the analysis markers of an existing `doc` ("" if none)."""
    try:
        text = doc.read_text()
    except OSError:
        return ""
    start, end = text.find(ANALYSIS_START), text.find(ANALYSIS_END)
    if start < 0 or end < start:
        return ""
    kept = text[start + len(ANALYSIS_START) : end].strip("\n")
    return "" if kept == DEFAULT_ANALYSIS else kept


def write_doc(result: dict[str, Any], doc: Path, plot_path: Path | None, json_path: Path, root: Path) -> Path:
    """Writes `doc`, linking the plot and the JSON relative to the repository; a hand-written
    analysis between the markers of the previous version is kept."""
    plot_rel = None if plot_path is None else _relative(plot_path, doc.parent)
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(render(result, plot_rel, _relative(json_path, root), kept_analysis(doc)))
    return doc


def _relative(path: Path, start: Path) -> str:
    import os

    return os.path.relpath(path, start)
