"""Benchmarks 4 (reaction to POST /run and /enable) and 6 (GET /tasks latency under task load): the real
app served in a subprocess with two bench-only routes (`measure`); report sections (`section`)."""
