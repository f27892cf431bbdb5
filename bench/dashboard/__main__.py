"""`python -m bench.dashboard [--quick]`: benchmark 10 alone; prints its section's markdown and writes
bench/results/dashboard-<date>.json."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("LOG_LEVEL", "WARNING")

from bench.common import ROOT  # noqa: E402
from bench.dashboard.measure import measure  # noqa: E402
from bench.dashboard.section import section  # noqa: E402
from bench.report import render  # noqa: E402


def main() -> int:
    """Runs benchmark 10 alone: prints its markdown, writes bench/results/dashboard-<date>.json."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.dashboard",
        description="Benchmark 10 alone: dashboard render time with 10,000 runs of history per task.",
    )
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    data = measure(args.quick)
    path = ROOT / "bench" / "results" / f"dashboard-{time.strftime('%Y-%m-%d')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"quick": args.quick, "results": data}, indent=1) + "\n")
    meta = {"quick": args.quick, "date": time.strftime("%Y-%m-%d %H:%M"), "wall_s": 0.0}
    print(render([section(data)], meta, path.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
