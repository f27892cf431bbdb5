"""Decoding: raw Kafka records to validated events or dead letters (the envelope contract, the
msgspec fast path, payload checks)."""
