"""Baselines the product is compared with, run in the same bench invocation.

- `seed_loop`: a faithful re-implementation of the seed's loop (schedule.run_pending + sleep 5).
- `aps`: APScheduler 3.x BackgroundScheduler helpers.
- `raw_consumers`: minimal kafka-python and confluent-kafka consume loops.
- `fixed_budget_cleanup`: the cleanup pass with a fixed row budget per table and run.
"""
