"""Kafka event pipeline: a supervised consumer thread that validates, stores and dead-letters events.

- pipeline: `build_consumer(...)`, the wiring an Application calls when KAFKA_ENABLED
- supervisor: keeps one worker thread alive, restarts it with backoff, enable/disable/status
- worker: poll → decode → handle → store the batch → commit offsets
- events / handlers / store / client / produce: the message contract, handlers, the idempotent
  store, the kafka-python clients, and a producer CLI for tests and demos
"""
