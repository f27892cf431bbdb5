"""Test tiers: a test that reaches PostgreSQL, the Kafka broker or chromium carries the marker
`make test-fast` deselects, so the fast tier never needs (or silently starts) any of them.

The suite is collected by a nested pytest session (tests/infra/tiers_probe.py), exactly as
`make test` collects it. What a test needs is read from the source of the test and of every fixture
it uses, independently of the fixture lists in tests/conftest.py that add the markers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.infra.tiers_probe import TiersProbe

ROOT = Path(__file__).resolve().parents[1]
FAST_TIERS = {"postgres", "kafka", "browser", "slow"}  # what `make test-fast` leaves out

# Code that reaches each resource. A test needs the tier if its own source or the source of a
# fixture it uses (transitively) contains one of these.
REACHES = {
    "postgres": ("PostgresCluster(", "postgres_server_url", "TEST_DATABASE_URL"),
    "kafka": ("TansuBroker(", "KafkaTestBroker("),
    "browser": ("chromium_browser(", "sync_playwright(", "chromium.launch("),
}
# A fixture parametrized over databases reaches no server on its SQLite side (database_url[sqlite]).
SERVERLESS_PARAMS = {"sqlite"}


@pytest.fixture(scope="module")
def collected() -> dict[str, Any]:
    """The whole suite as `make test` collects it (one collection for this module's tests)."""
    probe = TiersProbe()
    status = pytest.main(["--collect-only", "-qq", str(ROOT / "tests")], plugins=[probe])
    assert status == pytest.ExitCode.OK, f"collecting the suite failed ({status!r})"
    return {"items": probe.items, "fixtures": probe.fixtures}


def _needs(item: dict[str, Any], fixtures: dict[str, str]) -> dict[str, list[str]]:
    """Tier -> where the test reaches it (the test itself or a fixture's name)."""
    sources = [("the test", item["source"])]
    for used in item["fixtures"]:
        if item["params"].get(used["name"]) in SERVERLESS_PARAMS:
            continue
        sources.append((f"fixture {used['key']}", fixtures[used["key"]]))
    needs: dict[str, list[str]] = {}
    for tier, tokens in REACHES.items():
        for where, source in sources:
            if any(token in source for token in tokens):
                needs.setdefault(tier, []).append(where)
    return needs


def test_every_test_that_reaches_postgres_kafka_or_chromium_carries_its_tier_marker(collected) -> None:
    assert len(collected["items"]) > 300  # the whole suite, not a narrowed run
    unmarked = [
        f"{item['nodeid']}: {tier} (via {', '.join(where)})"
        for item in collected["items"]
        for tier, where in _needs(item, collected["fixtures"]).items()
        if tier not in item["markers"]
    ]
    assert unmarked == [], "tests that would run in `make test-fast` without their tier:\n" + "\n".join(unmarked)


def test_each_tier_is_applied_and_the_sqlite_side_stays_fast(collected) -> None:
    by_id = {item["nodeid"]: item for item in collected["items"]}
    fast = [item for item in collected["items"] if not FAST_TIERS & set(item["markers"])]
    assert len(fast) > 150, "the fast tier lost most of the suite"
    for tier in FAST_TIERS:
        assert any(tier in item["markers"] for item in collected["items"]), f"no test is marked {tier}"
    # database_url's two sides: PostgreSQL is its own tier, SQLite stays in the fast one.
    pg = "tests/test_coordination.py::test_each_slot_is_claimed_by_exactly_one_replica[postgresql]"
    assert "postgres" in by_id[pg]["markers"]
    assert not FAST_TIERS & set(by_id[pg.replace("[postgresql]", "[sqlite]")]["markers"])


def test_make_test_fast_leaves_out_exactly_the_tiers() -> None:
    makefile = (ROOT / "Makefile").read_text()
    target = re.search(r"^test-fast:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert target, "Makefile has no test-fast target"
    expression = re.search(r"-m \"([^\"]+)\"", target.group(1))
    assert expression, target.group(1)
    assert set(re.findall(r"not (\w+)", expression.group(1))) == FAST_TIERS
    assert "ensure-postgres" not in target.group(1) and "ensure-chromium" not in target.group(1)
