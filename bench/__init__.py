"""ServiceScheduler benchmarks (issue #4): `python -m bench [--quick] [--only 1,3]`.

Each measurement group is one module; `report` writes bench/results/*.json, docs/benchmarks.md
and docs/img/*.png. Baselines (the seed's loop, APScheduler, raw Kafka consumers) live in
`bench.baselines` and always run in the same invocation as the product.
"""
