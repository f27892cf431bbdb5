"""Kafka event pipeline (placeholder until the consumer lands)."""


def attach(runtime) -> None:
    """Wires the Kafka consumer into the runtime (not built yet)."""
    return None
