"""Benchmark 9: RSS, threads and start-up time of the running service, idle and after consuming benchmark
7's topic (`measure`, `section`; informational, no goal)."""
