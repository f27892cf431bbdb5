"""Benchmark 10: dashboard render time with 10,000 runs of history per task (`measure`, `section`);
`python -m bench.dashboard [--quick]` runs it alone."""
