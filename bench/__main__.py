"""`python -m bench [--quick] [--only 1,3]`: runs the benchmarks and writes the report."""

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
    number: int
    title: str
    run: Callable[[Context], Result]


# Each runner imports its package when it runs: a benchmark whose dependencies are missing or
# broken fails alone (reported as ERROR, the others still run), and `--help` stays instant.
def _timing(context: Context) -> dict:
    if context.timing is None:
        from bench.timing import measure

        context.timing = measure.measure(context.quick)
    return context.timing


def _lateness(context: Context) -> Result:
    from bench.timing import section

    data = _timing(context)
    return data, section.lateness_section(data)


def _head_of_line(context: Context) -> Result:
    from bench.timing import section

    return {"see": "1"}, section.head_of_line_section(_timing(context))


def _scale(context: Context) -> Result:
    from bench.scale import measure, section

    data = measure.measure(context.quick)
    return data, section.section(data)


def _reaction(context: Context) -> Result:
    from bench.web import measure, section

    data = measure.measure_reaction(context.quick)
    return data, section.reaction_section(data)


def _web_load(context: Context) -> Result:
    from bench.web import measure, section

    data = measure.measure_web(context.quick)
    return data, section.load_section(data)


def _throughput(context: Context) -> Result:
    from bench.pipeline import section, throughput

    bootstrap = context.broker.bootstrap()
    data = throughput.measure_throughput(context.quick, bootstrap) if bootstrap else {"skipped": context.broker.error}
    return data, section.throughput_section(data)


def _e2e(context: Context) -> Result:
    from bench.pipeline import consumer, e2e, section

    bootstrap = context.broker.bootstrap()
    reason = context.broker.error or consumer.consumer_available()
    data = {"skipped": reason} if reason or bootstrap is None else e2e.measure_e2e(context.quick, bootstrap)
    return data, section.e2e_section(data)


def _footprint(context: Context) -> Result:
    from bench.footprint import measure, section
    from bench.pipeline.consumer import consumer_available

    bootstrap = context.broker.bootstrap()
    after = None
    if bootstrap and consumer_available() is None:
        after = partial(measure.after_consume, context.quick, bootstrap)
    data = measure.measure(context.quick, bootstrap, after_consume=after)
    return data, section.section(data)


def _standard(package: str) -> Callable[[Context], Result]:
    """A benchmark whose package has `measure.measure(quick)` and `section.section(data)`
    (imported when it runs: a run of one benchmark imports only its own package)."""

    def run(context: Context) -> Result:
        measure = importlib.import_module(f"{package}.measure")
        section = importlib.import_module(f"{package}.section")
        data = measure.measure(context.quick)
        return data, section.section(data)

    return run


BENCHMARKS = (
    Benchmark(1, "Start lateness and drift", _lateness),
    Benchmark(2, "Head-of-line blocking", _head_of_line),
    Benchmark(3, "Scale: 10 to 10,000 tasks", _scale),
    Benchmark(4, "Reaction to the API", _reaction),
    Benchmark(5, "Async overhead per run", _standard("bench.async_overhead")),
    Benchmark(6, "Web latency under task load", _web_load),
    Benchmark(7, "Consumer throughput", _throughput),
    Benchmark(8, "Event → notification latency", _e2e),
    Benchmark(9, "Footprint and start-up", _footprint),
    Benchmark(10, "Dashboard render time", _standard("bench.dashboard")),
    Benchmark(11, "Retention throughput", _standard("bench.retention")),
    Benchmark(12, "Several replicas on one database", _standard("bench.cluster")),
    Benchmark(13, "Tracing off vs on", _standard("bench.tracing")),
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
    args = parser.parse_args(argv)
    words = [word.strip() for word in args.only.split(",") if word.strip()]
    unknown = [word for word in words if not word.isdigit() or int(word) not in BY_NUMBER]
    if unknown:
        parser.error(f"--only: no benchmark {', '.join(unknown)} (known: {', '.join(map(str, BY_NUMBER))})")
    args.selected = sorted({int(word) for word in words}) or list(BY_NUMBER)
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
    results: dict = {}
    sections: list[dict] = []
    broker = Broker()
    context = Context(quick=args.quick, broker=broker)
    try:
        for benchmark in (BY_NUMBER[number] for number in args.selected):
            t0 = time.monotonic()
            print(f"[bench] {benchmark.number} ...", file=sys.stderr, flush=True)
            try:
                data, section = benchmark.run(context)
            except Exception as exc:
                traceback.print_exc()
                data, section = {"error": repr(exc)}, _failed(benchmark, exc)
            results[str(benchmark.number)] = data
            sections.append(section)
            print(f"[bench] {benchmark.number} done in {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)
    finally:
        broker.stop()
        _stop_helpers()
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
