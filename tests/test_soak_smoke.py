"""The soak harness (`make soak`): its PASS/MISS logic on made-up samples, its probes on real
processes and databases, and a short real run (server + broker) whose report is computed from
what it measured."""

from __future__ import annotations

import ast
import json
import sqlite3
import tempfile
from contextlib import closing
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.soak.accounting import final_accounting, history_vs_stats
from bench.soak.faults import FAULTS
from bench.soak.probe import sample_process
from bench.soak.verdict import memory_growth, verdict

TESTS_DIR = Path(__file__).resolve().parent


def _samples(
    rss: list[float], threads: list[int] | None = None, fds: list[int] | None = None, step: float = 30.0
) -> list[dict]:
    threads = threads or [14] * len(rss)
    fds = fds or [30] * len(rss)
    return [
        {"t_s": i * step, "rss_mib": r, "threads": t, "fds": f}
        for i, (r, t, f) in enumerate(zip(rss, threads, fds, strict=True))
    ]


GOOD = {
    "produced": 1000,
    "stored": 990,
    "dead_lettered": 10,
    "missing_ids": 0,
    "runs_counted": 600,
    "runs_unrecorded": 0,
}


def _status(result: dict, name: str) -> str:
    return str(next(row["status"] for row in result["criteria"] if row["name"] == name))


def test_flat_run_passes_and_warm_up_growth_is_not_counted() -> None:
    # RSS doubles during the first minute (imports, pools), then stays within 10 %.
    result = verdict(_samples([50, 90, 100, 104, 105, 109]), GOOD, warmup_s=60)
    assert result["overall"] == "PASS"
    rss = result["criteria"][0]
    assert (rss["start"], rss["end"], rss["measured"]) == (100, 109, "+9.0%")


def test_rss_growth_of_ten_percent_after_warm_up_is_a_miss() -> None:
    result = verdict(_samples([50, 90, 100, 104, 107, 110]), GOOD, warmup_s=60)
    assert _status(result, "RSS growth") == "MISS" and result["overall"] == "MISS"


def _series(key: str, values: list[int], step: float = 15.0) -> list[dict]:
    samples = _samples([100.0] * len(values), step=step)
    for sample, value in zip(samples, values, strict=True):
        sample[key] = value
    return samples


WARM = [10, 20, 25, 28]  # t < 60 s: the warm-up, ignored


@pytest.mark.parametrize("key,name", [("threads", "threads"), ("fds", "open fds")])
@pytest.mark.parametrize(
    "values,status,measured",
    [
        (WARM + [30, 33, 30, 30, 33] * 4 + [33], "PASS", "+0"),  # transient peaks, one at the very end
        (WARM + [30] * 10 + [32] * 11, "PASS", "+2"),  # within the tolerance
        (WARM + [30 + i // 4 for i in range(21)], "MISS", "+4"),  # the floor creeps up: a leak
    ],
)
def test_threads_and_fds_are_judged_on_their_floor(
    key: str, name: str, values: list[int], status: str, measured: str
) -> None:
    row = next(r for r in verdict(_series(key, values), GOOD, warmup_s=60)["criteria"] if r["name"] == name)
    assert (row["status"], row["measured"].split()[0]) == (status, measured)


@pytest.mark.parametrize(
    "change,name",
    [
        ({"stored": 989}, "events lost"),  # one event neither stored nor dead-lettered
        ({"missing_ids": 1}, "events lost"),  # counts agree but an id is missing
        ({"produced": 0, "stored": 0, "dead_lettered": 0}, "events lost"),  # nothing produced proves nothing
        ({"runs_unrecorded": 1}, "runs unrecorded"),
        ({"runs_counted": 0}, "runs unrecorded"),
    ],
)
def test_any_loss_or_an_empty_measurement_is_a_miss(change: dict, name: str) -> None:
    result = verdict(_samples([100] * 5), {**GOOD, **change}, warmup_s=60)
    assert _status(result, name) == "MISS" and result["overall"] == "MISS"


def test_a_run_too_short_or_cut_short_is_never_a_pass() -> None:
    short = verdict(_samples([100, 100]), GOOD, warmup_s=60)
    assert _status(short, "RSS growth") == "NOT MEASURED" and short["overall"] == "MISS"
    cut = verdict(_samples([100] * 5), None, warmup_s=60)
    assert cut["overall"] == "MISS"


def test_memory_growth_tells_a_plateau_from_a_steady_leak() -> None:
    plateau = _samples([50, 90, 100, 110, 114, 115, 115, 115, 115])
    leak = _samples([50, 90, 100, 105, 110, 115, 120, 125, 130])
    for samples in (plateau, leak):
        for sample in samples:
            sample.update(rss_anon_mib=sample["rss_mib"] - 20, rss_file_mib=20.0, rss_shmem_mib=0.0)
    flat, steady = memory_growth(plateau), memory_growth(leak)
    assert flat is not None and steady is not None
    assert (flat["rss_mib"], flat["rss_anon_mib"], flat["rss_file_mib"]) == (15.0, 15.0, 0.0)
    assert flat["first_third_mib_per_min"] == 14.0 and flat["last_third_mib_per_min"] == 0.0
    assert steady["first_third_mib_per_min"] == steady["last_third_mib_per_min"] == 10.0
    assert memory_growth(_samples([100, 100])) is None


def test_probe_counts_this_process_sqlite_connections(tmp_path: Path) -> None:
    database = tmp_path / "probe.db"
    before = sample_process(_pid(), database)
    assert before.db_connections == 0 and before.rss_mib and before.threads and before.fds
    assert before.rss_anon_mib and before.rss_file_mib and before.rss_anon_mib < before.rss_mib
    connections = [sqlite3.connect(database) for _ in range(3)]
    try:
        for conn in connections:
            conn.execute("SELECT 1")  # sqlite opens the file lazily
        during = sample_process(_pid(), database)
        assert during.db_connections == 3
        assert during.fds is not None and during.fds >= before.fds + 3
    finally:
        for conn in connections:
            conn.close()
    assert sample_process(_pid(), database).db_connections == 0


def _pid() -> int:
    import os

    return os.getpid()


def test_accounting_compares_by_id(tmp_path: Path, make_settings) -> None:
    from servicescheduler.storage.db import Database
    from servicescheduler.storage.migrate import upgrade

    path = tmp_path / "acc.db"
    database = Database(make_settings(database_url=f"sqlite:///{path}"))
    upgrade(database.engine)
    database.dispose()
    now = datetime.now(UTC).isoformat()
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executemany(
            "INSERT INTO ss_events (id, type, occurred_at, received_at, topic, partition, offset) "
            "VALUES (?, 't', ?, ?, 'x', 0, 0)",
            [("e1", now, now), ("e2", now, now)],
        )
        conn.execute(
            "INSERT INTO ss_dead_letters (topic, partition, offset, error, value_truncated, created_at) "
            "VALUES ('x', 0, 9, 'json: bad', 0, ?)",
            (now,),
        )
        conn.executemany(
            "INSERT INTO ss_task_runs (run_id, task, trigger, scheduled_for, started_at, outcome) "
            "VALUES (?, ?, 'schedule', ?, ?, 'success')",
            [("r1", "soak-00", "s1", now), ("r2", "soak-00", "s2", now), ("r3", "other", "s1", now)],
        )
    runs_file = tmp_path / "runs.log"
    runs_file.write_text("soak-00 r1\nsoak-00 r2\nsoak-01 r9\n")
    acc = final_accounting(lambda: sqlite3.connect(path), runs_file, {"e1", "e2", "e3"}, 1, ["soak-00", "soak-01"])
    assert (acc["produced"], acc["stored"], acc["dead_lettered"], acc["missing_ids"]) == (4, 2, 1, 1)
    assert (acc["runs_counted"], acc["runs_unrecorded"], acc["unrecorded_sample"]) == (3, 1, ["r9"])
    assert acc["soak_run_outcomes"] == {"success": 2} and acc["slots_run_twice"] == 0
    assert verdict(_samples([100] * 5), acc, warmup_s=60)["overall"] == "MISS"
    stats = [{"name": "soak-00", "stats": {"runs": 3, "skipped": 0, "missed": 0}}]
    assert history_vs_stats(acc["runs_per_task"], stats) == [
        {"task": "soak-00", "scheduler_counted": 3, "rows": 2, "short": 1}
    ]


def test_the_page_is_regenerated_but_a_hand_written_analysis_is_kept(tmp_path: Path) -> None:
    from bench.soak import harness
    from bench.soak.report import ANALYSIS_END, ANALYSIS_START, DEFAULT_ANALYSIS, write_doc

    samples = _samples([100.0] * 5)
    result = {
        "date": "today",
        "config": asdict(harness.SoakConfig()),
        "samples": samples,
        "verdict": verdict(samples, GOOD),
        "accounting": None,
    }
    doc, json_path = tmp_path / "docs" / "reliability.md", tmp_path / "bench" / "results" / "soak.json"
    first = write_doc(result, doc, None, json_path, tmp_path).read_text()
    assert "## Soak: PASS" in first and DEFAULT_ANALYSIS in first and "`bench/results/soak.json`" in first
    doc.write_text(first.replace(DEFAULT_ANALYSIS, "Traced to X; fixed in Y."))
    result["verdict"] = verdict(samples, {**GOOD, "stored": 1})
    second = write_doc(result, doc, None, json_path, tmp_path).read_text()
    assert "## Soak: MISS" in second and DEFAULT_ANALYSIS not in second
    assert f"{ANALYSIS_START}\nTraced to X; fixed in Y.\n{ANALYSIS_END}" in second


def test_the_harness_declares_no_task_in_the_shared_registry() -> None:
    from bench.soak import harness  # noqa: F401 (imported for its side effects, of which there must be none)
    from servicescheduler.scheduling import tasks

    # Apps built without a registry serve every task in `tasks`: the soak's belong to its server only.
    assert [spec.name for spec in tasks if spec.name.startswith("soak-")] == []


def _test_names() -> set[str]:
    names = set()
    for path in TESTS_DIR.glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"):
                names.add(f"{path.name}::{node.name}")
    return names


def test_every_test_named_in_the_fault_table_exists() -> None:
    named = [test for fault in FAULTS for test in fault.tests]
    assert len(named) >= 20
    missing = sorted(set(named) - _test_names())
    assert missing == [], f"bench/soak/faults.py names tests that do not exist: {missing}"


@pytest.mark.slow
@pytest.mark.kafka
@pytest.mark.timeout(180)
def test_short_soak_of_the_real_service_reports_what_it_measured(tmp_path: Path) -> None:
    from bench.soak import harness

    # Two catch-ups: the consumer is off for 3 s at the start and at 10 s, then works off the backlog.
    config = harness.SoakConfig(
        seconds=20, rate=50, interval_s=2, warmup_s=6, bad_every=50, quick=True, pause_s=3, pauses_at=(0.0, 0.5)
    )
    result = harness.run(config)
    doc = harness.write_outputs(result, tmp_path)
    catchups = result["catchups"]
    assert [round(c["at_s"]) for c in catchups] == [0, 10] and all("error" not in c for c in catchups)
    assert all(c["paused_s"] >= 3 and c["state"] in ("starting", "running") for c in catchups)

    samples = result["samples"]
    assert len(samples) >= 10
    for sample in samples:
        assert sample["rss_mib"] > 20 and sample["threads"] > 3 and sample["fds"] > 5
        assert sample["db_connections"] >= 1  # the server's own SQLite connections, seen from /proc
    acc, load = result["accounting"], result["load"]
    assert acc["produced"] == load["acked_good"] + load["acked_bad"] >= 900
    assert acc["produced_malformed"] == load["acked_bad"] > 0
    # The database count and the server's own counter are two measurements of the same thing.
    assert acc["stored"] == samples[-1]["events_stored"] > 0
    assert acc["runs_counted"] >= 20 * 15  # the 20 tasks of TASK_MODULES ran, every second
    assert result["verdict"] == verdict(samples, acc, config.warmup_s)  # computed from the measurements
    lost = acc["produced"] - acc["stored"] - acc["dead_lettered"]
    events_row = next(r for r in result["verdict"]["criteria"] if r["name"] == "events lost")
    assert events_row["status"] == ("PASS" if lost == 0 and acc["missing_ids"] == 0 else "MISS")

    text = doc.read_text()
    assert f"## Soak: {result['verdict']['overall']}" in text and "## Faults the test suite injects" in text
    assert "kill -9 of the server, at a random moment" in text and "(img/soak.png)" in text
    assert "Catch-ups: at 0 min and 0 min the consumer is disabled for 3 s" in text
    assert "- Mid-run catch-up at 10 s (consumer off " in text
    assert (tmp_path / "docs" / "img" / "soak.png").stat().st_size > 10_000
    saved = json.loads((tmp_path / "bench" / "results" / "soak.json").read_text())
    assert saved["verdict"] == result["verdict"] and len(saved["samples"]) == len(samples)
    assert tempfile.gettempdir() not in json.dumps(saved)  # no machine paths in what gets committed
