"""Benchmarks 1 (start lateness and drift) and 2 (head-of-line blocking): one measurement (`measure`,
each scheduler in its own subprocess), two report sections (`section`). Baselines: APScheduler
(`aps`) and the seed's loop (`seed_loop`)."""
