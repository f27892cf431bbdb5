"""The Grafana dashboard (deploy/grafana/servicescheduler.json) and the alert rules name only series
the service really exports: every PromQL expression's metric names are checked against the
/metrics of a running app. Also: the dashboard is valid JSON whose panels all carry queries, and
its expressions parse (promtool, when installed)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from servicescheduler.metrics import Metrics
from servicescheduler.scheduling.cluster_sync import ReplicaGauges
from servicescheduler.scheduling.registry import TaskRegistry
from servicescheduler.scheduling.triggers import every
from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "servicescheduler.json"
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"

# ----------------------------------------------------------------------------- PromQL metric names
# No maintained PromQL parser exists for Python; this extractor removes everything that can hold a
# word that is not a metric name (strings, label matchers, ranges, grouping clauses), then keeps the
# words not called as functions. The tests below pin it on the constructs the files use.
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_WORDS = re.compile(r"(?<![\w:.$])([A-Za-z_:][\w:]*)(\s*\()?")
_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS |= {"offset", "bool", "inf", "nan", "atan2"}
_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<expr>.*),\s*\w+\s*\)\s*$", re.DOTALL)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects."""
    if "__name__" in expr:
        raise ValueError(f"selecting by __name__ is not supported here: {expr}")
    text = _STRINGS.sub(" ", expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    return {word for word, call in _WORDS.findall(text) if not call and word.lower() not in _KEYWORDS}


def grafana_query_names(query: str) -> set[str]:
    """Metric names of a Grafana query: PromQL, or a `label_values(selector, label)` variable query."""
    match = _LABEL_VALUES.match(query)
    return metric_names(match.group("expr")) if match else metric_names(query)


def dashboard_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, query) for every panel target and every query variable."""
    for panel in _all_panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} target {target.get('refId')}", target["expr"]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]
            yield f"variable {variable['name']}", query["query"] if isinstance(query, dict) else query


def rule_expressions() -> Iterator[tuple[str, str]]:
    """(where, expr) for every rule of alerts.yml."""
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            yield f"rule {rule.get('alert') or rule.get('record')}", rule["expr"]


def _all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _all_panels(panel.get("panels", []))  # collapsed rows hold their panels


# ----------------------------------------------------------------------------- exported names
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}


def exported_names(exposition: str) -> tuple[set[str], set[str]]:
    """(every series name the exposition declares, those with a sample now).

    Declared: from the TYPE lines, which are written for every registered metric, also a labelled
    one with no sample yet (consumer lag before any partition is assigned, dead letters before the
    first); prometheus_client names a counter `x` as `x_total`, a histogram's series `x_bucket`...
    """
    declared: set[str] = set()
    sampled: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        declared.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
        sampled.update(sample.name for sample in family.samples)
    return declared, sampled


def unexported(queries: Iterator[tuple[str, str]], exported: set[str], names=metric_names) -> dict[str, set[str]]:
    """{where: names it uses that are not exported}, for the queries using any."""
    missing = {where: names(query) - exported for where, query in queries}
    return {where: names for where, names in missing.items() if names}


def _load_dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


# ----------------------------------------------------------------------------- the extractor
@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (outcome) (rate(task_runs_total{job=~"$job", task=~"a,b"}[$__rate_interval]))', {"task_runs_total"}),
        (
            "histogram_quantile(0.95, sum by (task, le) (rate(task_run_duration_seconds_bucket[5m])))",
            {"task_run_duration_seconds_bucket"},
        ),
        (
            "time() - max by (job, task) (last) > on (job, task) 3 * max(interval) and on(job) enabled == 1"
            " unless ignoring(x) other offset 5m",
            {"last", "interval", "enabled", "other"},
        ),
        ("sum(rate(a[5m:1m])) by (le) / ignoring(le) group_left(instance) b", {"a", "b"}),
        ('count(up == bool 1) or vector(1e3) + c{reason="and or"}', {"up", "c"}),
    ],
)
def test_metric_names_finds_the_selected_series(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_label_values_variables_name_their_selector_only() -> None:
    assert grafana_query_names('label_values(task_enabled{job=~"$job"}, task)') == {"task_enabled"}


# ----------------------------------------------------------------------------- the dashboard itself
def test_the_dashboard_is_valid_json_with_a_query_in_every_panel() -> None:
    dashboard = _load_dashboard()
    assert dashboard["uid"] and dashboard["title"] == "ServiceScheduler"
    panels = list(_all_panels(dashboard["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    graphs = [panel for panel in panels if panel["type"] != "row"]
    assert len(graphs) >= 10
    for panel in graphs:
        targets = panel.get("targets") or []
        assert targets, f"panel {panel['title']!r} has no query"
        assert all(target.get("expr", "").strip() for target in targets), panel["title"]
        ref_ids = [target["refId"] for target in targets]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    titles = {panel["title"] for panel in graphs}
    for needed in ("Runs by outcome", "Run duration (p50, p95, p99)", "Consumer rate", "Lag per partition"):
        assert needed in titles
    assert {"Dead letters", "Replicas alive"} <= titles
    assert {"Retries", "Check-ins", "Messages per topic", "Dead-letter share per topic", "Lag per topic"} <= titles


def test_the_dashboards_expressions_parse(tmp_path: Path) -> None:
    # promtool parses PromQL: the expressions go into a rules file as recording rules, with
    # Grafana's variables replaced by values of their kind.
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is not installed but CI must check the dashboard (scripts/ensure-promtool.sh)")
        pytest.skip("promtool not installed (scripts/ensure-promtool.sh installs Debian's prometheus)")
    rules = []
    for index, (_, query) in enumerate(dashboard_queries(_load_dashboard())):
        if _LABEL_VALUES.match(query):
            continue
        expr = query.replace("$__rate_interval", "5m").replace("$job", ".+").replace("$task", ".+")
        rules.append({"record": f"dashboard:expr{index}", "expr": expr})
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", "dashboard.yml"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ----------------------------------------------------------------------------- names against /metrics
def test_every_series_in_the_dashboard_and_the_rules_is_exported_by_the_running_app(live_app, make_settings) -> None:
    registry = TaskRegistry()
    # Never ran: runs at start. Its retries export the exhausted count at 0.
    registry.register("job", lambda: None, trigger=every(1).hours, retries=1)
    app = live_app(make_settings(), registry)
    wait_until(lambda: "task_run_duration_seconds_bucket{" in app.client.get("/metrics").text)
    declared, sampled = exported_names(app.client.get("/metrics").text)

    dashboard = _load_dashboard()
    used = {name for _, query in dashboard_queries(dashboard) for name in grafana_query_names(query)}
    used |= {name for _, expr in rule_expressions() for name in metric_names(expr)}
    assert len(used) >= 20  # the extractor found the names, not nothing
    assert unexported(dashboard_queries(dashboard), declared, grafana_query_names) == {}
    assert unexported(rule_expressions(), declared) == {}
    # Declared without a sample is fine only for series that wait for something to happen: no
    # Kafka here, nothing dead-lettered, dropped or requested while disabled, no check-in URL.
    assert used - sampled <= {
        "consumer_lag",
        "consumer_topic_lag",
        "consumer_topic_events_total",
        "consumer_dead_lettered_total",
        "task_checkins_total",
        "run_history_dropped_total",
        "task_run_requests_dropped_total",
    }


def test_a_misspelled_series_is_reported_with_where_it_is_used() -> None:
    metrics = Metrics()
    ReplicaGauges(metrics)
    declared, _ = exported_names(generate_latest(metrics.registry).decode())
    dashboard = _load_dashboard()
    assert unexported(dashboard_queries(dashboard), declared, grafana_query_names) == {}
    lag_panel = next(panel for panel in _all_panels(dashboard["panels"]) if panel["title"] == "Lag per partition")
    lag_panel["targets"][0]["expr"] = lag_panel["targets"][0]["expr"].replace("consumer_lag", "consumer_lags")
    assert unexported(dashboard_queries(dashboard), declared, grafana_query_names) == {
        "panel 'Lag per partition' target A": {"consumer_lags"}
    }
