"""The Prometheus alert rules (deploy/prometheus/alerts.yml): `promtool check rules` accepts them,
their promtool unit tests (alerts_test.yml) pass and cover every rule both firing and quiet, and
/metrics exports the task interval the staleness rule compares against.

In CI (CI=true) a missing promtool is a failure; locally the promtool tests skip
(scripts/ensure-promtool.sh installs Debian's prometheus package, which ships it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from servicescheduler.scheduling.registry import TaskRegistry
from servicescheduler.scheduling.triggers import every
from tests.conftest import AUTH

PROMETHEUS_DIR = Path(__file__).resolve().parent.parent / "deploy" / "prometheus"
RULES = PROMETHEUS_DIR / "alerts.yml"
RULE_TESTS = PROMETHEUS_DIR / "alerts_test.yml"


@pytest.fixture(scope="module")
def promtool() -> str:
    """The promtool executable (CI: required)."""
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is not installed but CI must test the alert rules (scripts/ensure-promtool.sh)")
        pytest.skip("promtool not installed (scripts/ensure-promtool.sh installs Debian's prometheus)")
    return path


def run_promtool(promtool: str, *args: str, cwd: Path = PROMETHEUS_DIR) -> None:
    """Runs promtool; fails the test with its whole output when it does not succeed."""
    result = subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise AssertionError(f"promtool {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")


def alert_names() -> list[str]:
    """The alert names defined in alerts.yml."""
    rules = yaml.safe_load(RULES.read_text())
    return [rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule]


def test_promtool_accepts_the_rules(promtool: str) -> None:
    run_promtool(promtool, "check", "rules", RULES.name)


def test_the_rules_pass_their_promtool_unit_tests(promtool: str) -> None:
    run_promtool(promtool, "test", "rules", RULE_TESTS.name)


def test_the_unit_tests_catch_a_rule_that_ignores_disabled_tasks(promtool: str, tmp_path: Path) -> None:
    # Evidence that the unit tests bite: the same tests against a rule that forgets the enabled
    # flag fail, and promtool's output names the rule.
    rules = RULES.read_text()
    condition = "max by (job, task) (task_enabled) == 1"
    assert condition in rules
    (tmp_path / RULES.name).write_text(rules.replace(condition, "max by (job, task) (task_enabled) >= 0"))
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    with pytest.raises(AssertionError, match=r"(?s)alertname: TaskNotSucceeding.*task=\"off\""):
        run_promtool(promtool, "test", "rules", RULE_TESTS.name, cwd=tmp_path)


def test_a_broken_rule_fails_the_check_with_promtools_message(promtool: str, tmp_path: Path) -> None:
    broken = tmp_path / "alerts.yml"
    unclosed = "rate(task_runs_total[5m]"
    broken.write_text(f"groups:\n  - name: g\n    rules:\n      - alert: Broken\n        expr: {unclosed}\n")
    with pytest.raises(AssertionError, match="(?i)parse error"):
        run_promtool(promtool, "check", "rules", broken.name, cwd=tmp_path)


def test_every_rule_has_a_firing_and_a_quiet_unit_test() -> None:
    cases = yaml.safe_load(RULE_TESTS.read_text())
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in cases["tests"]:
        check: dict[str, Any]
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = alert_names()
    assert len(names) == len(set(names)), "duplicate alert names"
    assert set(names) == {
        "TaskNotSucceeding",
        "TaskFailureRatioHigh",
        "TaskRetriesExhausted",
        "TaskRetryingOften",
        "TaskCheckinsFailing",
        "SchedulerLoopStalled",
        "RunHistoryDropped",
        "ConsumerNotConsuming",
        "ConsumerCrashLooping",
        "ConsumerLagGrowing",
        "DeadLettersRising",
        "TopicDeadLettering",
        "ReplicaDead",
    }
    assert [name for name in names if name not in firing] == [], "rules without a firing test"
    assert [name for name in names if name not in quiet] == [], "rules without a not-firing test"


def _interval(text: str, task: str) -> float | None:
    match = re.search(rf'^task_interval_seconds\{{task="{task}"\}} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else None


def test_metrics_export_each_tasks_interval_and_follow_a_reschedule(live_app, make_settings) -> None:
    registry = TaskRegistry()
    registry.register("job", lambda: None, trigger=every(90).seconds)
    registry.register("nightly", lambda: None, trigger=every().day.at("03:00"))
    app = live_app(make_settings(), registry)
    text = app.client.get("/metrics").text
    assert _interval(text, "job") == 90.0
    assert _interval(text, "nightly") == 86400.0  # a calendar task: its unit's period
    response = app.client.patch("/tasks/job", json={"interval_seconds": 30}, headers=AUTH)
    assert response.status_code == 200, response.text
    assert _interval(app.client.get("/metrics").text, "job") == 30.0
