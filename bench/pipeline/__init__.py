"""Benchmarks 7 (consumer throughput) and 8 (event → notification latency), on the bench's Tansu broker.

`events` (what is produced, and the topics), `raw_consumers` (the baselines), `consumer` (the product's
`ConsumerWorker` as the benchmark runs it), `profile` (where its time goes), `storage_floor` (its
store stage alone), `throughput` (7), `e2e` (8), `section` (their report sections)."""
