"""`python -m bench [--quick] [--only 1,3 [--merge]]`: runs the benchmarks and writes the report."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

os.environ.setdefault("LOG_LEVEL", "WARNING")

from bench.common import ROOT, ensure_path  # noqa: E402

ensure_path()

from bench import report  # noqa: E402

if TYPE_CHECKING:
    from devtools.tansu import TansuBroker

Result = tuple[dict, dict]  # (raw results, report section)


class Broker:
    """The bench's Tansu broker, started on first use and stopped at the end."""

    def __init__(self) -> None:
        self.broker: TansuBroker | None = None
        self.error: str | None = None

    def bootstrap(self) -> str | None:
        if self.broker is None and self.error is None:
            try:
                from bench.pipeline.events import set_broker
                from devtools.tansu import TansuBroker

                self.broker = TansuBroker().start()
                set_broker(self.broker)
            except Exception as exc:
                self.error = f"Tansu broker unavailable: {exc}"
        return None if self.broker is None else self.broker.bootstrap

    def stop(self) -> None:
        if self.broker is not None:
            self.broker.stop()


@dataclass
class Context:
    """What the benchmarks of one invocation share: the mode, the broker, and the timing
    measurement that benchmarks 1 and 2 both report (measured once)."""

    quick: bool
    broker: Broker
    timing: dict | None = None


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: `measure` returns its raw results; `render` builds its report section from
    them and the other benchmarks' results (benchmark 2 is drawn from 1's measurement), so a page
    can be rebuilt from stored results (`--merge`)."""

    number: int
    title: str
    measure: Callable[[Context], dict]
    render: Callable[[dict, dict[str, dict]], dict]

    def run(self, context: Context) -> Result:
        """Measures, then renders with what this invocation has measured (bench.compare's call)."""
        data = self.measure(context)
        return data, self.render(data, {"1": context.timing or {}})


# Each function imports its package when it runs: a benchmark whose dependencies are missing or
# broken fails alone (reported as ERROR, the others still run), and `--help` stays instant.
def _timing(context: Context) -> dict:
    if context.timing is None:
        from bench.timing import measure

        context.timing = measure.measure(context.quick)
    return context.timing


def _head_of_line(context: Context) -> dict:
    _timing(context)
    return {"see": "1"}


def _throughput(context: Context) -> dict:
    from bench.pipeline import throughput

    bootstrap = context.broker.bootstrap()
    return throughput.measure_throughput(context.quick, bootstrap) if bootstrap else {"skipped": context.broker.error}


def _e2e(context: Context) -> dict:
    from bench.pipeline import consumer, e2e

    bootstrap = context.broker.bootstrap()
    reason = context.broker.error or consumer.consumer_available()
    return {"skipped": reason} if reason or bootstrap is None else e2e.measure_e2e(context.quick, bootstrap)


def _footprint(context: Context) -> dict:
    from bench.footprint import measure
    from bench.pipeline.consumer import consumer_available

    bootstrap = context.broker.bootstrap()
    after = None
    if bootstrap and consumer_available() is None:
        after = partial(measure.after_consume, context.quick, bootstrap)
    return measure.measure(context.quick, bootstrap, after_consume=after)


def _measure(package: str, function: str = "measure") -> Callable[[Context], dict]:
    """`package.measure.<function>(quick)` (imported when it runs)."""

    def run(context: Context) -> dict:
        return getattr(importlib.import_module(f"{package}.measure"), function)(context.quick)

    return run


def _section(package: str, function: str = "section") -> Callable[[dict, dict[str, dict]], dict]:
    """`package.section.<function>(data)` (imported when it renders)."""

    def render(data: dict, results: dict[str, dict]) -> dict:
        return getattr(importlib.import_module(f"{package}.section"), function)(data)

    return render


def _head_of_line_section(data: dict, results: dict[str, dict]) -> dict:
    from bench.timing import section

    return section.head_of_line_section(results["1"])


BENCHMARKS = (
    Benchmark(1, "Start lateness and drift", _timing, _section("bench.timing", "lateness_section")),
    Benchmark(2, "Head-of-line blocking", _head_of_line, _head_of_line_section),
    Benchmark(3, "Scale: 10 to 10,000 tasks", _measure("bench.scale"), _section("bench.scale")),
    Benchmark(
        4, "Reaction to the API", _measure("bench.web", "measure_reaction"), _section("bench.web", "reaction_section")
    ),
    Benchmark(5, "Async overhead per run", _measure("bench.async_overhead"), _section("bench.async_overhead")),
    Benchmark(
        6, "Web latency under task load", _measure("bench.web", "measure_web"), _section("bench.web", "load_section")
    ),
    Benchmark(7, "Consumer throughput", _throughput, _section("bench.pipeline", "throughput_section")),
    Benchmark(8, "Event → notification latency", _e2e, _section("bench.pipeline", "e2e_section")),
    Benchmark(9, "Footprint and start-up", _footprint, _section("bench.footprint")),
    Benchmark(10, "Dashboard render time", _measure("bench.dashboard"), _section("bench.dashboard")),
    Benchmark(11, "Retention throughput", _measure("bench.retention"), _section("bench.retention")),
    Benchmark(12, "Several replicas on one database", _measure("bench.cluster"), _section("bench.cluster")),
    Benchmark(13, "Tracing off vs on", _measure("bench.tracing"), _section("bench.tracing")),
)
BY_NUMBER = {benchmark.number: benchmark for benchmark in BENCHMARKS}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        epilog="benchmarks:\n" + "\n".join(f"  {b.number:>2}. {b.title}" for b in BENCHMARKS),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="same measurements, fewer samples (≤ 2 min)")
    parser.add_argument("--only", default="", help="comma-separated benchmark numbers, e.g. 1,3")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="with --only: keep the other benchmarks' results from the file docs/benchmarks.md was "
        "written from and rewrite the whole page (each section says when it was measured)",
    )
    args = parser.parse_args(argv)
    words = [word.strip() for word in args.only.split(",") if word.strip()]
    unknown = [word for word in words if not word.isdigit() or int(word) not in BY_NUMBER]
    if unknown:
        parser.error(f"--only: no benchmark {', '.join(unknown)} (known: {', '.join(map(str, BY_NUMBER))})")
    args.selected = sorted({int(word) for word in words}) or list(BY_NUMBER)
    args.selected_keys = {str(number) for number in args.selected}
    if args.merge and not words:
        parser.error("--merge needs --only: without it every benchmark is measured anyway")
    return args


def _failed(benchmark: Benchmark, exc: BaseException) -> dict:
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return {
        "id": benchmark.number,
        "title": benchmark.title,
        "method": f"Failed: `{text[:300]}`",
        "goals": [{**report.goal(f"benchmark {benchmark.number}", "runs", "failed", False), "status": "ERROR"}],
    }


def _stop_helpers() -> None:
    """Joins the service stops benchmark 8 left in the background, then stops the PostgreSQL
    cluster the bench started (only if those modules were used)."""
    if "bench.pipeline.e2e" in sys.modules:
        sys.modules["bench.pipeline.e2e"].join_stops()
    if "bench.postgres" in sys.modules:
        sys.modules["bench.postgres"].shutdown()


def main(argv: list[str] | None = None) -> int:
    """Runs the selected benchmarks (one failing does not stop the others) and writes the report."""
    args = _parse(argv)
    started = time.monotonic()
    date = time.strftime("%Y-%m-%d %H:%M")
    results: dict[str, dict] = {}
    measured_on: dict[str, str] = {}
    failures: dict[int, dict] = {}
    merged_from = None
    if args.merge:
        merged_from, previous, previous_dates = report.previous_results()
        for number in BY_NUMBER:
            if number not in args.selected and str(number) in previous:
                results[str(number)] = previous[str(number)]
                measured_on[str(number)] = previous_dates.get(str(number), "earlier")
    broker = Broker()
    context = Context(quick=args.quick, broker=broker)
    try:
        for benchmark in (BY_NUMBER[number] for number in args.selected):
            t0 = time.monotonic()
            print(f"[bench] {benchmark.number} ...", file=sys.stderr, flush=True)
            try:
                results[str(benchmark.number)] = benchmark.measure(context)
            except Exception as exc:
                traceback.print_exc()
                results[str(benchmark.number)] = {"error": repr(exc)}
                failures[benchmark.number] = _failed(benchmark, exc)
            measured_on[str(benchmark.number)] = date
            print(f"[bench] {benchmark.number} done in {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)
    finally:
        broker.stop()
        _stop_helpers()
    if context.timing is not None and "1" not in args.selected_keys:  # benchmark 2 is drawn from it
        results["1"], measured_on["1"] = context.timing, date
    sections = []
    for benchmark in BENCHMARKS:
        if str(benchmark.number) not in results:
            continue
        try:
            section = failures.get(benchmark.number) or benchmark.render(results[str(benchmark.number)], results)
        except Exception as exc:
            traceback.print_exc()
            section = _failed(benchmark, exc)
        sections.append(section)
    meta = {
        "quick": args.quick,
        "selected": args.selected,
        "date": date,
        "wall_s": time.monotonic() - started,
        "measured_on": measured_on,
        "merged_from": merged_from,
    }
    json_path, doc = report.write_all(results, sections, meta)
    print(
        f"[bench] wrote {os.path.relpath(json_path, ROOT)} and {os.path.relpath(doc, ROOT)} in {meta['wall_s']:.0f} s",
        file=sys.stderr,
    )
    for section in sections:
        for row in section["goals"]:
            print(f"  {section['id']}. {row['metric']}: {row['result']} (goal {row['goal']}) {row['status']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
