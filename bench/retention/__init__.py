"""Benchmark 11: can retention keep up with 1,000 events/s? The product's cleanup pass against the
fixed-budget pass it replaced (`fixed_budget_cleanup`, the baseline); `measure`, `section`."""
