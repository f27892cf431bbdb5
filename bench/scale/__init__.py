"""Benchmark 3: the cost of a wake-up, lateness and idle behaviour with 10 to 10,000 tasks (`measure`,
one subprocess per size; `section`)."""
