"""ServiceScheduler benchmarks (issue #4): `python -m bench [--quick] [--only 1,3]`.

One package per benchmark (or pair of benchmarks sharing a measurement): `timing` (1, 2), `scale` (3),
`web` (4, 6), `async_overhead` (5), `pipeline` (7, 8), `footprint` (9), `dashboard` (10), `retention`
(11), `cluster` (12), and the soak (`soak`, `python -m bench.soak`). Each measures (`measure`) and
builds its report section (`section`); its baselines (the seed's loop, APScheduler, raw Kafka
consumers, the old cleanup pass) live beside it and always run in the same invocation as the product.
Shared: `common` (settings, probes), `stats`, `report` (summary rows; writes bench/results/*.json,
docs/benchmarks.md and docs/img/*.png), `postgres` (the bench's PostgreSQL server) and `service`
(the real service in a subprocess). bench imports devtools and the product, never tests.
"""
