"""Kafka event pipeline: a supervised consumer thread that validates, stores and dead-letters events.

- pipeline: `build_consumer(...)`, the wiring an Application calls when KAFKA_ENABLED
- supervisor: keeps one worker thread alive, restarts it with backoff, enable/disable/status
- worker: poll → decode → handle → store the batch → commit offsets; status: what it publishes;
  storeahead: the `kafka-store` thread that stores batch N while N+1 is polled; offsets: stored
  offsets waiting for their commit
- intake / wire: a poll result to decoded messages and dead letters; the msgspec fast path for
  plain events (pydantic `Event` stays the contract and words every refusal)
- events / payload: the message contract and hostile-input checks (depth, surrogates, ranges)
- handlers / watchdog: per-type handlers and the stuck-handler watch
- store / bulk / deadletter: the idempotent batch store (COPY on PostgreSQL, multi-row INSERTs
  on SQLite), bisection of refused batches, dead-letter rows
- client / confluent_client / rebalance: kafka-python (default) or confluent-kafka clients, and
  the listener that commits stored offsets before partitions are revoked
- checkchain / throughput: one supervisor check chain; events/s samples for the dashboard
- produce: a producer CLI for tests and demos
"""
