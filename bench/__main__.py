"""`python -m bench [--quick] [--only 1,3]`: runs the benchmarks and writes the report."""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from typing import TYPE_CHECKING

os.environ.setdefault("LOG_LEVEL", "WARNING")

from bench.common import ROOT, ensure_path  # noqa: E402

ensure_path()

from bench import goals, goals_more, report  # noqa: E402

if TYPE_CHECKING:
    from devtools.tansu import TansuBroker

ALL = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="same measurements, fewer samples (≤ 2 min)")
    parser.add_argument("--only", default="", help="comma-separated benchmark numbers, e.g. 1,3")
    args = parser.parse_args(argv)
    args.selected = sorted({int(x) for x in args.only.split(",") if x.strip()}) or list(ALL)
    return args


class Broker:
    """The bench's Tansu broker, started on first use and stopped at the end."""

    def __init__(self) -> None:
        self.broker: TansuBroker | None = None
        self.error: str | None = None

    def bootstrap(self) -> str | None:
        if self.broker is None and self.error is None:
            try:
                from bench.pipeline import set_broker
                from devtools.tansu import TansuBroker

                self.broker = TansuBroker().start()
                set_broker(self.broker)
            except Exception as exc:
                self.error = f"Tansu broker unavailable: {exc}"
        return None if self.broker is None else self.broker.bootstrap

    def stop(self) -> None:
        if self.broker is not None:
            self.broker.stop()


def _run(number: int, quick: bool, broker: Broker) -> tuple[dict, dict]:
    """Runs benchmark `number`; returns (raw results, report section)."""
    if number == 1 or number == 2:
        from bench import sched_timing

        data = _TIMING.setdefault("data", None) or sched_timing.measure(quick)
        _TIMING["data"] = data
        section = goals.timing_section(data) if number == 1 else goals.hol_section(data)
        return (data if number == 1 else {"see": "1"}), section
    if number == 3:
        from bench import scale

        data = scale.measure(quick)
        return data, goals.scale_section(data)
    if number == 4:
        from bench import http

        data = http.measure_reaction(quick)
        return data, goals_more.reaction_section(data)
    if number == 5:
        from bench import asyncloop

        data = asyncloop.measure(quick)
        return data, goals_more.async_section(data)
    if number == 12:
        from bench import cluster, cluster_section

        data = cluster.measure(quick)
        return data, cluster_section.section(data)
    if number == 11:
        from bench import retention

        data = retention.measure(quick)
        return data, retention.section(data)
    if number == 6:
        from bench import http

        data = http.measure_web(quick)
        return data, goals_more.web_section(data)
    if number == 10:
        from bench import dashboard

        data = dashboard.measure(quick)
        return data, dashboard.section(data)
    return _run_kafka(number, quick, broker)


_TIMING: dict = {}


def _run_kafka(number: int, quick: bool, broker: Broker) -> tuple[dict, dict]:
    from bench import footprint, pipeline

    bootstrap = broker.bootstrap()
    if number == 7:
        data = pipeline.measure_throughput(quick, bootstrap) if bootstrap else {"skipped": broker.error}
        return data, goals_more.throughput_section(data)
    if number == 8:
        reason = broker.error or pipeline.consumer_available()
        if reason:
            data = {"skipped": reason}
        else:
            from bench.pipeline_product import measure_e2e

            data = measure_e2e(quick, bootstrap)
        return data, goals_more.e2e_section(data)
    after = None
    if bootstrap and pipeline.consumer_available() is None:
        from functools import partial

        from bench.pipeline_product import footprint_after_consume

        after = partial(footprint_after_consume, quick, bootstrap)
    data = footprint.measure(quick, bootstrap, after_consume=after)
    return data, goals_more.footprint_section(data)


def _failed(number: int, exc: BaseException) -> dict:
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return {
        "id": number,
        "title": f"benchmark {number}",
        "method": f"Failed: `{text[:300]}`",
        "goals": [{**goals.goal(f"benchmark {number}", "runs", "failed", False), "status": "ERROR"}],
    }


def main(argv: list[str] | None = None) -> int:
    """Runs the selected benchmarks (one failing does not stop the others) and writes the report."""
    args = _parse(argv)
    started = time.monotonic()
    results: dict = {}
    sections: list[dict] = []
    broker = Broker()
    try:
        for number in args.selected:
            t0 = time.monotonic()
            print(f"[bench] {number} ...", file=sys.stderr, flush=True)
            try:
                data, section = _run(number, args.quick, broker)
            except Exception as exc:
                traceback.print_exc()
                data, section = {"error": repr(exc)}, _failed(number, exc)
            results[str(number)] = data
            sections.append(section)
            print(f"[bench] {number} done in {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)
    finally:
        broker.stop()
        if "bench.pipeline_product" in sys.modules:
            sys.modules["bench.pipeline_product"].shutdown()  # the PostgreSQL cluster, if started
    meta = {
        "quick": args.quick,
        "selected": args.selected,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "wall_s": time.monotonic() - started,
    }
    json_path, doc = report.write_all(results, sections, meta)
    print(
        f"[bench] wrote {json_path.relative_to(ROOT)} and {doc.relative_to(ROOT)} in {meta['wall_s']:.0f} s",
        file=sys.stderr,
    )
    for section in sections:
        for row in section["goals"]:
            print(f"  {section['id']}. {row['metric']}: {row['result']} (goal {row['goal']}) {row['status']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
