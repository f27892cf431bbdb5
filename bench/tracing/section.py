"""Report section of benchmark 13 (tracing off vs on)."""

from __future__ import annotations

from bench.report import goal
from bench.stats import ratio


def section(data: dict) -> dict:
    """Benchmark 13."""
    run, consume = data["run_us"], data["consume_per_s"]
    rows = [
        [label, values["off"]["p50"], values["on"]["p50"], ratio(values["on"]["p50"], values["off"]["p50"])]
        for label, values in (("run overhead (µs per run, p50)", run), ("consumer throughput (events/s, p50)", consume))
    ]
    goals = [
        goal("run overhead, tracing on", "informational", f"{run['on']['p50']} µs (off {run['off']['p50']} µs)", None),
        goal(
            "consumer throughput, tracing on",
            "informational",
            f"{consume['on']['p50']}/s (off {consume['off']['p50']}/s)",
            None,
        ),
    ]
    return {
        "id": 13,
        "title": "Tracing off vs on",
        "goals": goals,
        "method": (
            f"Off: the OpenTelemetry API alone (no SDK: the proxy provider). On: the SDK, every span handed "
            f"to an exporter that does nothing. {data['rounds']} rounds, off and on alternating, each sample a "
            f"fresh process: {data['runs']} no-op sync runs through RunLauncher, and {data['events']} events "
            "through ConsumerWorker.process into SQLite in batches of 1000, each record with a traceparent "
            "(a batch span and one process span per message)."
        ),
        "tables": [{"columns": ["measure", "off", "on", "on / off"], "rows": rows}],
    }
