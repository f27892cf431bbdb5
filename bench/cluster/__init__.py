"""Benchmark 12: several replicas on one database (claim cost, lateness, toggle propagation, failover);
`measure`, `section`; `python -m bench.cluster [--quick]` runs it alone."""
