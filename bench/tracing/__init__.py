"""Benchmark 13: the cost of tracing, off (the OpenTelemetry API alone) and on (the SDK)."""
