"""Kafka event pipeline: a supervised consumer thread that validates, stores and dead-letters events.

One sub-package per role:

- clients/: `kafka` (kafka-python, the default, and the factory for either client), `confluent`
  (librdkafka behind the same surface), `rebalance` (commits stored offsets before partitions move),
  `batches` (a record batch a client cannot decode becomes one undecodable record, not a stall)
- decoding/: `events` (the envelope contract and `decode()`), `wire` (the msgspec fast path;
  pydantic `Event` stays the contract and words every refusal), `payload` (hostile-input checks:
  depth, surrogates, ranges), `intake` (a poll result to decoded messages and dead letters),
  `deadletter` (dead-letter rows and DLQ copies)
- storing/: `store` (one idempotent transaction per batch, bisection of refused batches),
  `handlers` and `watchdog` (per-type handlers and the stuck-handler watch), `storeahead` (the
  `kafka-store` thread), `offsets` (stored offsets waiting for their commit). The SQL of the
  event rows is in `servicescheduler.storage.events`, next to the other queries.
- running/: `worker` (poll → decode → handle → store → commit), `supervisor` (restarts with
  backoff, enable/disable), `status` and `throughput` (what it publishes, `db_unavailable`
  included), `checkchain`, `pipeline` (the wiring a ServiceScheduler calls when KAFKA_ENABLED)
"""
