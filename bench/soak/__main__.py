"""`python -m bench.soak [--minutes 10] [--quick]` (`make soak`): the soak of bench.soak.harness.
Exit code: 0 PASS, 1 MISS, 2 the harness could not run the soak."""

from __future__ import annotations

from bench.soak.harness import main

if __name__ == "__main__":
    raise SystemExit(main())
