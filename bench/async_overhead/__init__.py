"""Benchmark 5: the per-run overhead of an `async def` task run in a fresh event loop (`measure`, `section`)."""
