"""Kafka fixtures (a session-scoped Tansu broker); filled in by the consumer work."""
