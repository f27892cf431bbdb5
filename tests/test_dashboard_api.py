"""The JSON routes the dashboard added (dead letters, throughput, run paging) and its pure helpers."""

from __future__ import annotations

from devtools.seed_history import seed_history
from servicescheduler.consumers.running.throughput import ThroughputSampler
from servicescheduler.dashboard.charts import duration_chart, rate_chart, success_rate
from servicescheduler.dashboard.format import countdown, duration
from servicescheduler.scheduling.registry import TaskRegistry
from servicescheduler.scheduling.triggers import every
from servicescheduler.storage.db import Database
from servicescheduler.storage.migrate import upgrade
from servicescheduler.storage.models import DeadLetter
from servicescheduler.support.clock import utcnow


def _registry() -> TaskRegistry:
    registry = TaskRegistry()
    registry.register("job", lambda: None, trigger=every(1).hours)
    return registry


def test_dead_letters_route_previews_raw_bytes_as_text(live_app, make_settings, database_url) -> None:
    app = live_app(make_settings(database_url=database_url), _registry())
    with app.application.database.session() as session:
        session.add_all(
            [
                DeadLetter(
                    topic="events",
                    partition=0,
                    offset=7,
                    key=None,
                    value=b"\xff\xfe<b>x</b>",
                    error="encoding: not UTF-8",
                    created_at=utcnow(),
                ),
                DeadLetter(
                    topic="events",
                    partition=1,
                    offset=8,
                    key=b"k",
                    value=b"y" * 600,
                    value_truncated=False,
                    error="json: invalid JSON",
                    created_at=utcnow(),
                ),
            ]
        )
    rows = app.client.get("/consumer/dead-letters", params={"limit": 5}).json()
    assert [(r["partition"], r["offset"]) for r in rows] == [(1, 8), (0, 7)]  # newest first
    assert rows[0]["value_preview"] == "y" * 500 and rows[0]["value_truncated"] is True
    assert rows[1]["value_preview"] == "\ufffd\ufffd<b>x</b>" and rows[1]["reason"] == "encoding: not UTF-8"
    assert len(app.client.get("/consumer/dead-letters", params={"limit": 1}).json()) == 1
    bad = app.client.get("/consumer/dead-letters", params={"limit": 0})
    assert bad.status_code == 422 and "greater than or equal to 1" in bad.json()["detail"]


def test_run_history_pages_with_offset(live_app, make_settings, database_url) -> None:
    settings = make_settings(database_url=database_url)
    database = Database(settings)
    upgrade(database.engine)
    seed_history(database, {"job": 3600}, 30)
    database.dispose()
    app = live_app(settings, _registry())
    everything = app.client.get("/tasks/job/runs", params={"limit": 30}).json()
    pages = [app.client.get("/tasks/job/runs", params={"limit": 10, "offset": o}).json() for o in (0, 10, 20, 30)]
    assert [len(p) for p in pages] == [10, 10, 10, 0]
    assert [r["run_id"] for p in pages for r in p] == [r["run_id"] for r in everything]
    assert app.client.get("/tasks/job/runs", params={"offset": -1}).status_code == 422


def test_throughput_route_without_kafka_is_empty(live_app, make_settings) -> None:
    app = live_app(make_settings(), _registry())
    assert app.client.get("/consumer/throughput").json() == {"sample_seconds": None, "points": []}


def test_throughput_sampler_rates_between_samples() -> None:
    counters = iter([(0, 0), (50, 40), (50, 40), (10, 5), (110, 95)])  # the dip: totals being folded in

    def read() -> dict:
        messages, events = next(counters)
        return {"messages_processed": messages, "events_stored": events}

    sampler = ThroughputSampler(read, period=5.0, keep=4)
    assert [sampler.check(t) for t in (100.0, 105.0, 110.0, 115.0, 120.0)] == [105.0, 110.0, 115.0, 120.0, 125.0]
    points = sampler.rates()["points"]  # keep=4: the first sample has gone
    assert [(p["messages_per_second"], p["events_per_second"]) for p in points] == [(0, 0), (0, 0), (20, 18)]


def test_charts_and_formats() -> None:
    runs = [
        {"started_at": f"t{i}", "duration_ms": d, "outcome": o}
        for i, (d, o) in enumerate([(10.0, "success"), (0.0, "skipped"), (40.0, "error"), (20.0, "success")])
    ]
    chart = duration_chart(runs, 100, 40, 10)
    assert [b.outcome for b in chart.bars] == ["success", "error", "skipped", "success"]  # oldest first
    assert [b.height for b in chart.bars] == [20.0, 40.0, 2.0, 10.0] and chart.peak == 40.0
    assert success_rate(runs) == 2 / 3 and success_rate(runs[1:2]) is None
    rates = rate_chart([{"at": "a", "events_per_second": 5, "messages_per_second": 5}], 60, 10, 6)
    assert rates.bars[0].x == 50.0  # newest at the right edge
    assert (countdown(0.4), countdown(12.9), countdown(125), countdown(7300)) == (
        "due now",
        "in 12 s",
        "in 2 min 5 s",
        "in 2 h 1 min",
    )
    assert (duration(None), duration(12.34), duration(3200), duration(300_000)) == ("–", "12.3 ms", "3.20 s", "5.0 min")


def test_replicas_panel_shows_the_cluster_view(live_app, make_settings, database_url) -> None:
    app = live_app(make_settings(database_url=database_url), _registry())
    cluster = app.client.get("/cluster").json()
    fragment = app.client.get("/ui/panels/replicas").text
    assert cluster["self"] in fragment and "(this page's server)" in fragment
    assert [r["alive"] for r in cluster["replicas"]] == [True] and ">alive<" in fragment


def test_replicas_panel_says_when_clustering_is_off(live_app, make_settings) -> None:
    app = live_app(make_settings(cluster_enabled=False), _registry())
    assert app.client.get("/cluster").status_code == 404
    assert "Clustering is off" in app.client.get("/ui/panels/replicas").text
