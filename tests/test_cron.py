"""cron(...) triggers, the DST policy of cron and .at, the pure next_fire of every trigger, and
jitter that every replica derives alike."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from servicescheduler import cron as public_cron
from servicescheduler.scheduler import Scheduler
from servicescheduler.scheduling import cron as package_cron
from servicescheduler.scheduling.coordination import DatabaseCoordinator
from servicescheduler.scheduling.registry import TaskDefinitionError, TaskRegistry
from servicescheduler.scheduling.triggers import Trigger, TriggerError, cron, every
from servicescheduler.storage.db import Database
from servicescheduler.storage.history import run_rows, store_history
from servicescheduler.storage.migrate import upgrade
from servicescheduler.storage.records import RunRecord
from servicescheduler.vocabulary import RunOutcome
from tests.conftest import FakeClock, wait_until

BERLIN, NEW_YORK = "Europe/Berlin", "America/New_York"


def _fires(trigger: Trigger, start: str, count: int) -> list[str]:
    """The next fires as UTC text (expected local times are written with their offsets)."""
    return [fire.astimezone(UTC).isoformat() for fire in _upcoming(trigger, start, count)]


def _utc(local: list[str]) -> list[str]:
    return [datetime.fromisoformat(text).astimezone(UTC).isoformat() for text in local]


def _upcoming(trigger: Trigger, start: str, count: int) -> list[datetime]:
    return trigger.upcoming(datetime.fromisoformat(start), count)


# ----------------------------------------------------------------------------- the DST policy
# 2026: Berlin springs forward on 29 March (02:00 CET -> 03:00 CEST) and falls back on 25 October
# (03:00 CEST -> 02:00 CET); New York on 8 March (02:00 EST -> 03:00 EDT) and 1 November
# (02:00 EDT -> 01:00 EST). A local time in the gap runs once, at the first instant after it; a
# local time that happens twice runs once, at its first occurrence; hourly and finer follow UTC.
DAILY_GAP_BERLIN = ("2026-03-28T12:00:00+01:00", ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"])
DAILY_FOLD_BERLIN = ("2026-10-24T12:00:00+02:00", ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"])
HOURLY_GAP_BERLIN = (
    "2026-03-29T00:30:00+01:00",
    ["2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00"],
)
HOURLY_FOLD_BERLIN = (
    "2026-10-25T01:30:00+02:00",
    ["2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"],
)
DAILY_GAP_NY = ("2026-03-07T12:00:00-05:00", ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"])
DAILY_FOLD_NY = ("2026-10-31T12:00:00-04:00", ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"])
HOURLY_GAP_NY = (
    "2026-03-08T00:30:00-05:00",
    ["2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00"],
)
HOURLY_FOLD_NY = (
    "2026-11-01T00:30:00-04:00",
    ["2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00"],
)

DST_TABLE = [
    # (description, trigger, (start, expected fires))
    ("cron daily, Berlin, spring forward", lambda: cron("30 2 * * *", tz=BERLIN), DAILY_GAP_BERLIN),
    ("cron daily, Berlin, fall back", lambda: cron("30 2 * * *", tz=BERLIN), DAILY_FOLD_BERLIN),
    ("cron 6 fields daily, Berlin, spring forward", lambda: cron("0 30 2 * * *", tz=BERLIN), DAILY_GAP_BERLIN),
    ("cron 6 fields daily, Berlin, fall back", lambda: cron("0 30 2 * * *", tz=BERLIN), DAILY_FOLD_BERLIN),
    ("cron hourly, Berlin, spring forward", lambda: cron("0 * * * *", tz=BERLIN), HOURLY_GAP_BERLIN),
    ("cron hourly, Berlin, fall back", lambda: cron("0 * * * *", tz=BERLIN), HOURLY_FOLD_BERLIN),
    ("cron daily, New York, spring forward", lambda: cron("30 2 * * *", tz=NEW_YORK), DAILY_GAP_NY),
    ("cron daily, New York, fall back", lambda: cron("30 1 * * *", tz=NEW_YORK), DAILY_FOLD_NY),
    ("cron hourly, New York, spring forward", lambda: cron("0 * * * *", tz=NEW_YORK), HOURLY_GAP_NY),
    ("cron hourly, New York, fall back", lambda: cron("0 * * * *", tz=NEW_YORK), HOURLY_FOLD_NY),
    (".at daily, Berlin, spring forward", lambda: every().day.at("02:30", BERLIN), DAILY_GAP_BERLIN),
    (".at daily, Berlin, fall back", lambda: every().day.at("02:30", BERLIN), DAILY_FOLD_BERLIN),
    (".at hourly, Berlin, spring forward", lambda: every().hour.at(":00", BERLIN), HOURLY_GAP_BERLIN),
    (".at hourly, Berlin, fall back", lambda: every().hour.at(":00", BERLIN), HOURLY_FOLD_BERLIN),
    (".at daily, New York, spring forward", lambda: every().day.at("02:30", NEW_YORK), DAILY_GAP_NY),
    (".at daily, New York, fall back", lambda: every().day.at("01:30", NEW_YORK), DAILY_FOLD_NY),
    (".at hourly, New York, spring forward", lambda: every().hour.at(":00", NEW_YORK), HOURLY_GAP_NY),
    (".at hourly, New York, fall back", lambda: every().hour.at(":00", NEW_YORK), HOURLY_FOLD_NY),
    (
        ".at weekday, Berlin, spring forward",
        lambda: every().sunday.at("02:30", BERLIN),
        ("2026-03-28T12:00:00+01:00", ["2026-03-29T03:00:00+02:00", "2026-04-05T02:30:00+02:00"]),
    ),
]


@pytest.mark.parametrize(("build", "case"), [(b, c) for _, b, c in DST_TABLE], ids=[d for d, _, _ in DST_TABLE])
def test_dst_policy_table(build, case) -> None:
    built = build()
    trigger = built if isinstance(built, Trigger) else Trigger.from_job(built)
    start, expected = case
    assert _fires(trigger, start, len(expected)) == _utc(expected)


def test_hourly_follows_utc_through_both_changes() -> None:
    for zone, start in ((BERLIN, "2026-03-28T20:00:00+00:00"), (BERLIN, "2026-10-24T20:00:00+00:00")):
        fires = _upcoming(cron("*/30 * * * *", tz=zone), start, 24)
        gaps = {(b - a).total_seconds() for a, b in zip(fires, fires[1:], strict=False)}
        assert gaps == {1800.0}, zone  # no half hour skipped or doubled across the change


def test_two_local_times_in_one_gap_run_once() -> None:
    fires = _upcoming(cron("0,30 2 * * *", tz=BERLIN), "2026-03-28T12:00:00+01:00", 3)
    assert [f.astimezone(UTC).isoformat() for f in fires] == [
        "2026-03-29T01:00:00+00:00",  # 02:00 and 02:30 do not exist: one run, at 03:00 CEST
        "2026-03-30T00:00:00+00:00",
        "2026-03-30T00:30:00+00:00",
    ]


def test_a_day_that_ran_in_the_first_occurrence_is_not_run_again_in_the_second() -> None:
    trigger = cron("30 2 * * *", tz=BERLIN)
    second_0215 = datetime(2026, 10, 25, 1, 15, tzinfo=UTC)  # 02:15 CET, the repeated hour
    assert trigger.next_fire(second_0215) == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)


# ----------------------------------------------------------------------------- syntax and errors
def test_cron_is_exported_from_the_package_and_the_scheduling_package() -> None:
    import servicescheduler
    import servicescheduler.scheduling

    assert public_cron is package_cron is cron
    assert "cron" in servicescheduler.__all__ and "cron" in servicescheduler.scheduling.__all__


@pytest.mark.parametrize(
    ("expression", "start", "expected"),
    [
        ("30 2 * * 1-5", "2026-12-04T03:00:00+00:00", ["2026-12-07T02:30:00+00:00", "2026-12-08T02:30:00+00:00"]),
        ("0 9-17/4 * * *", "2026-12-04T10:00:00+00:00", ["2026-12-04T13:00:00+00:00", "2026-12-04T17:00:00+00:00"]),
        ("15,45 * * * *", "2026-12-04T10:20:00+00:00", ["2026-12-04T10:45:00+00:00", "2026-12-04T11:15:00+00:00"]),
        ("0 0 1 jan,jul *", "2026-12-04T00:00:00+00:00", ["2027-01-01T00:00:00+00:00", "2027-07-01T00:00:00+00:00"]),
        ("0 12 * * SAT,sun", "2026-12-04T00:00:00+00:00", ["2026-12-05T12:00:00+00:00", "2026-12-06T12:00:00+00:00"]),
        ("*/20 * * * * *", "2026-12-04T00:00:30+00:00", ["2026-12-04T00:00:40+00:00", "2026-12-04T00:01:00+00:00"]),
        ("0 0 13 * 5", "2026-12-04T00:00:00+00:00", ["2026-12-11T00:00:00+00:00", "2026-12-13T00:00:00+00:00"]),
    ],
)
def test_cron_syntax(expression, start, expected) -> None:
    assert _fires(cron(expression, tz="UTC"), start, len(expected)) == _utc(expected)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("61 * * * *", r"cron '61 \* \* \* \*': minute field: '61' is not valid \(allowed: 0-59"),
        ("0 24 * * *", "hour field: '24'"),
        ("0 0 0 * *", "day-of-month field: '0'"),
        ("0 0 * 13 *", "month field: '13'"),
        ("0 0 * * 8", "day-of-week field: '8'"),
        ("0 0 * * funday", "day-of-week field: 'funday'"),
        ("60 0 0 * * *", "second field: '60'"),
        ("*/0 * * * *", r"minute field: '\*/0'"),
        ("5-1 * * * *", "minute field: '5-1'"),
        ("0 0 L * *", "day-of-month field: 'L': L, LW and # are not supported"),
        ("0 0 * * mon#2", "day-of-week field: 'mon#2'"),
        ("0 0 30 2 *", "day-of-month field: '30' does not occur in the months named \\('2'\\)"),
        ("* * *", "has 3 fields; expected 5"),
        ("* * * * * * *", "has 7 fields"),
    ],
)
def test_a_bad_expression_fails_at_declaration_naming_the_field(expression, message) -> None:
    with pytest.raises(TriggerError, match=message):
        TaskRegistry().register("job", lambda: None, trigger=cron(expression))


def test_an_unknown_zone_and_a_non_trigger_are_refused() -> None:
    with pytest.raises(TriggerError, match="unknown time zone 'Mars/Olympus'"):
        cron("0 0 * * *", tz="Mars/Olympus")
    with pytest.raises(TaskDefinitionError, match="job: invalid trigger: trigger must be built with every"):
        TaskRegistry().register("job", lambda: None, trigger="30 2 * * *")


def test_a_cron_trigger_is_a_calendar_trigger_and_takes_catch_up() -> None:
    spec = TaskRegistry().register("job", lambda: None, trigger=cron("30 2 * * 1-5", tz=BERLIN), catch_up=True)
    trigger = spec.trigger
    assert trigger.is_calendar and trigger.interval_seconds is None and trigger.at is None
    assert trigger.nominal_period_seconds == 86400  # the shortest gap: grace and staleness
    assert trigger.describe() == "cron '30 2 * * 1-5' Europe/Berlin"


def test_calendar_slots_passed_while_down_include_both_occurrences_of_an_hourly_fold() -> None:
    trigger = cron("0 * * * *", tz=BERLIN)
    after = datetime(2026, 10, 24, 23, 30, tzinfo=UTC).timestamp()  # 01:30 CEST
    before = datetime(2026, 10, 25, 2, 0, tzinfo=UTC).timestamp()  # 03:00 CET
    slots = trigger.passed_slots(after, before, limit=10)
    assert [datetime.fromtimestamp(s, UTC).hour for s in slots] == [0, 1, 2]  # 02:00 twice, 03:00
    assert trigger.passed_slots(after, before, limit=2) == slots[1:]  # the newest `limit`
    daily = cron("30 2 * * *", tz=BERLIN)
    start, end = datetime(2026, 3, 27, tzinfo=UTC).timestamp(), datetime(2026, 3, 31, tzinfo=UTC).timestamp()
    week = daily.passed_slots(start, end, 10)
    assert [datetime.fromtimestamp(s, UTC).isoformat() for s in week] == [
        "2026-03-27T01:30:00+00:00",
        "2026-03-28T01:30:00+00:00",
        "2026-03-29T01:00:00+00:00",  # 02:30 did not exist: 03:00 CEST
        "2026-03-30T00:30:00+00:00",
    ]


# ----------------------------------------------------------------------------- next_fire on every trigger
def test_next_fire_is_pure_and_needs_an_aware_datetime() -> None:
    moment = datetime(2030, 6, 1, 12, 0, 0, 500_000, tzinfo=UTC)
    interval = Trigger.from_job(every(30).seconds)
    assert interval.next_fire(moment) == moment + timedelta(seconds=30)
    assert Trigger.from_job(every().day.at("03:15")).next_fire(moment) is not None
    assert cron("0 3 * * *", tz="UTC").next_fire(moment) == datetime(2030, 6, 2, 3, tzinfo=UTC)
    assert cron("0 12 * * *", tz="UTC").next_fire(datetime(2030, 6, 1, 12, tzinfo=UTC)) == datetime(
        2030, 6, 2, 12, tzinfo=UTC
    )  # strictly after
    for trigger in (interval, cron("* * * * *")):
        with pytest.raises(TriggerError, match="aware"):
            trigger.next_fire(datetime(2030, 6, 1))


def test_next_fire_of_an_at_trigger_does_not_read_the_clock() -> None:
    trigger = Trigger.from_job(every().day.at("03:15", "UTC"))
    # Far from today: `schedule` itself would answer relative to the wall clock.
    assert trigger.next_fire(datetime(2001, 1, 1, 4, tzinfo=UTC)) == datetime(2001, 1, 2, 3, 15, tzinfo=UTC)
    every_other = Trigger.from_job(every(2).days.at("03:15", "UTC"))
    fires = every_other.upcoming(datetime(2001, 1, 1, tzinfo=UTC), 3)
    assert [(b - a).days for a, b in zip(fires, fires[1:], strict=False)] == [2, 2]


def test_until_ends_next_fire() -> None:
    trigger = Trigger.from_job(every(1).hours.until(datetime(2030, 1, 1, 12, 30)))
    start = datetime(2030, 1, 1, 11, 0).astimezone(UTC)
    assert trigger.upcoming(start, 5) == [start + timedelta(hours=1)]


# ----------------------------------------------------------------------------- jitter replicas agree on
def test_jitter_is_the_same_in_every_process_and_differs_between_tasks() -> None:
    def slots(name: str) -> list[float]:
        trigger = TaskRegistry().register(name, lambda: None, trigger=every(5).to(10).seconds).trigger
        due, out = 1_800_000_000.0, []
        for _ in range(40):
            nxt = trigger.next_due(due, due)
            assert nxt is not None and 5 <= nxt - due <= 10
            out.append(nxt)
            due = nxt
        return out

    first = slots("jittered")
    assert slots("jittered") == first  # two "replicas" declare the task and name the same slots
    assert len({b - a for a, b in zip(first, first[1:], strict=False)}) > 1  # still jittered
    assert slots("another") != first


# ----------------------------------------------------------------------------- in the engine
T0 = 1_800_000_000.0  # a whole minute (2027-01-15 08:00:00 UTC)


def _recording(name: str, trigger: Trigger, calls: list[float | None], **options: object) -> TaskRegistry:
    registry = TaskRegistry()
    registry.register(name, lambda ctx: calls.append(ctx.scheduled_for), trigger=trigger, **options)
    return registry


def test_a_cron_task_runs_on_its_slots_in_the_engine(make_scheduler) -> None:
    clock = FakeClock(T0 + 3)
    calls: list[float | None] = []
    scheduler = make_scheduler(_recording("tens", cron("*/10 * * * * *", tz="UTC"), calls), clock=clock)
    assert calls == []  # a calendar task waits for its first slot
    for _ in range(3):
        due = scheduler.next_due("tens")
        assert due is not None
        clock.now = due
        scheduler.tick()
        assert scheduler.wait_idle(5)
    assert calls == [T0 + 10, T0 + 20, T0 + 30]
    clock.now = T0 + 40 - 0.001  # within the dispatch lead: the slot at T0 + 40 is handed out now
    scheduler.tick()
    assert scheduler.next_due("tens") == T0 + 50  # the next slot, not T0 + 40 again
    clock.now = T0 + 40
    assert scheduler.wait_idle(5)
    assert calls == [T0 + 10, T0 + 20, T0 + 30, T0 + 40]
    assert scheduler.status("tens").schedule == "cron '*/10 * * * * *' UTC"


@pytest.mark.parametrize("catch_up", [False, True])
def test_cron_slots_that_passed_while_down_are_missed_and_caught_up_once(make_scheduler, catch_up) -> None:
    calls: list[float | None] = []
    clock = FakeClock(T0)
    first = make_scheduler(_recording("tens", cron("*/10 * * * * *", tz="UTC"), calls, catch_up=catch_up), clock=clock)
    first.stop(timeout=1)
    with first.database.session() as session:
        store_history(session, [RunRecord("before", "tens", "schedule", T0, T0, T0 + 1, RunOutcome.SUCCESS)], [])
    clock.now = T0 + 35
    again = make_scheduler(_recording("tens", cron("*/10 * * * * *", tz="UTC"), calls, catch_up=catch_up), clock=clock)
    assert again.wait_idle(5)
    rows = run_rows(again.database, "tens", 50, None)
    missed = sorted(datetime.fromisoformat(r["scheduled_for"]).timestamp() for r in rows if r["outcome"] == "missed")
    assert missed == [T0 + 10, T0 + 20, T0 + 30]
    assert len(calls) == (1 if catch_up else 0)


def test_three_replicas_run_each_jittered_slot_once(make_settings, database_url) -> None:
    """every(5).to(10): the replicas derive the same slots, so each runs once cluster-wide."""
    clock = FakeClock(T0)
    calls: list[float | None] = []
    replicas: list[Scheduler] = []
    databases: list[Database] = []
    try:
        for name in "abc":
            settings = make_settings(database_url=database_url)
            database = Database(settings)
            databases.append(database)
            upgrade(database.engine)
            coordinator = DatabaseCoordinator(database, ttl_seconds=15, clock=clock, replica_id=name)
            registry = _recording("jittered", every(5).to(10).seconds, calls)
            replica = Scheduler(settings, database, registry, clock=clock, coordinator=coordinator)
            replica.start(run_loop=False)
            replicas.append(replica)
        rounds = 8
        for _ in range(rounds + 1):
            for replica in replicas:
                replica.tick()
            for replica in replicas:
                assert replica.wait_idle(10)
            named = {replica.next_due("jittered") for replica in replicas}
            assert len(named) == 1, f"the replicas name different slots: {sorted(named)}"
            (clock.now,) = named
        slots = sorted(slot for slot in calls if slot is not None)
        assert slots[0] == T0 and len(slots) == rounds + 1 == len(set(slots))  # each slot once
        gaps = {b - a for a, b in zip(slots, slots[1:], strict=False)}
        assert gaps <= {5.0, 6.0, 7.0, 8.0, 9.0, 10.0} and len(gaps) > 1  # jittered, within bounds
        rows = run_rows(replicas[0].database, "jittered", 50, None)
        assert sorted(r["outcome"] for r in rows) == ["success"] * (rounds + 1)
    finally:
        for replica in replicas:
            replica.stop(timeout=5)
        for database in databases:
            database.dispose()


@pytest.mark.realtime
@pytest.mark.slow  # a subprocess or a live server for seconds: out of the fast tier
def test_a_six_field_cron_task_runs_on_its_even_seconds_in_a_live_app(live_app, make_settings) -> None:
    registry = TaskRegistry()
    registry.register("even-seconds", lambda: None, trigger=cron("*/2 * * * * *", tz="UTC"))
    app = live_app(make_settings(), registry)

    def three_runs() -> list[dict] | None:
        rows = [r for r in run_rows(app.scheduler.database, "even-seconds", 20, None) if r["outcome"] == "success"]
        return rows if len(rows) >= 3 else None

    rows = wait_until(three_runs, timeout=20, interval=0.2)
    slots = sorted(datetime.fromisoformat(r["scheduled_for"]).timestamp() for r in rows)
    assert all(slot % 2 == 0 for slot in slots)  # on its even seconds
    every_row = run_rows(app.scheduler.database, "even-seconds", 20, None)
    assert all(b - a == 2 for a, b in zip(slots, slots[1:], strict=False)), [
        (r["scheduled_for"], r["outcome"], r["error"]) for r in every_row
    ]  # none skipped
    for row in rows:
        lateness = (
            datetime.fromisoformat(row["started_at"]).timestamp()
            - datetime.fromisoformat(row["scheduled_for"]).timestamp()
        )
        assert -0.01 <= lateness < 0.5, row  # started on time (a loaded machine: half a second)
    page = app.client.get("/ui/tasks/even-seconds").text
    shown = re.search(r'<dd id="next-runs">(.*?)</dd>', page)
    assert shown is not None, page
    times = re.findall(r'<time datetime="([^"]+)">', shown.group(1))
    dues = [datetime.fromisoformat(t).timestamp() for t in times]
    assert len(dues) == 5 and all(b - a == 2 for a, b in zip(dues, dues[1:], strict=False)), times
