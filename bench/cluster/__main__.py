"""`python -m bench.cluster [--quick]`: benchmark 12 alone; prints the raw results (JSON) and the
summary rows of docs/benchmarks.md."""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("LOG_LEVEL", "WARNING")

from bench.cluster.measure import measure  # noqa: E402
from bench.cluster.section import section  # noqa: E402
from bench.postgres import shutdown  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Measures and prints the section as markdown rows (for docs/benchmarks.md)."""
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (15 s windows, 10 toggles, 200 claims)")
    data = measure(parser.parse_args(argv).quick)
    print(json.dumps(data, indent=1))
    for row in section(data)["goals"]:
        print(
            f"| 12 | {row['metric']} | {row['goal']} | {row['result']} | {row['baseline']} | "
            f"{row['ratio'] if row['ratio'] is not None else '–'} | {row['status']} |"
        )
    shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
