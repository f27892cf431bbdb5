"""The faults the test suite injects and what each proves: rendered into docs/reliability.md.

Edit this list when a test that injects a fault is added, renamed or removed:
tests/test_soak_smoke.py checks that every test named here exists in tests/.
"""

from __future__ import annotations

from typing import NamedTuple


class Fault(NamedTuple):
    fault: str
    how: str
    tests: tuple[str, ...]  # "file.py::test_name"
    proves: str


FAULTS: tuple[Fault, ...] = (
    Fault(
        "Kafka broker unreachable at start-up, then back",
        "the broker advertises a TCP proxy's port; `kafka.outage()` closes the proxy and every live "
        "connection, then listens again (broker state intact)",
        ("test_consumer_kafka.py::test_broker_down_at_startup_then_recovers_by_itself",),
        "start-up is not blocked (< 5 s) and /health stays 200; the consumer restarts with backoff and "
        "shows `KafkaTimeoutError`; /ready is 503 naming the consumer; once reachable, the 200-event "
        "backlog is stored and /ready turns 200 with no operator action",
    ),
    Fault(
        "SQLite database locked mid-stream",
        "another connection holds `BEGIN EXCLUSIVE` while 100 events arrive (busy timeout 100 ms)",
        ("test_consumer_kafka.py::test_database_locked_mid_stream_loses_nothing",),
        "a transient store failure is retried, not dead-lettered: no offset is committed while locked, "
        "`last_error` says `locked`, and after the unlock all 200 events are stored, 0 dead letters",
    ),
    Fault(
        "PostgreSQL read-only while a batch is stored ahead",
        "`KAFKA_STORE_AHEAD=auto` (on for PostgreSQL with kafka-python), batches of 50: new connections get "
        "`default_transaction_read_only` while 500 events arrive, so the batch in flight fails after the "
        "next one was polled",
        (
            "test_consumer_db_unavailable.py::"
            "test_store_ahead_on_postgresql_rewinds_both_batches_and_stores_each_event_once",
        ),
        "both batches are rewound; once writable all 550 events are stored once (0 duplicates, 0 dead "
        "letters) and 550 offsets committed",
    ),
    Fault(
        "Database refusing writes (disk full) while events flow",
        "the live app's SQLite connections get `PRAGMA max_page_count` = the file's size, so every insert "
        "fails with `database or disk is full` while reads (and /ready's ping) work; 100 events of 6 KB "
        "produced through the broker; then the limit is lifted. PostgreSQL made read-only "
        "(`default_transaction_read_only` on every new connection), then writable again",
        (
            "test_consumer_db_unavailable.py::"
            "test_a_database_refusing_writes_turns_ready_503_and_the_consumer_db_unavailable_until_it_recovers",
            "test_consumer_unit.py::test_a_worker_that_cannot_store_makes_the_consumer_db_unavailable_and_not_ready_at_once",
            "test_consumer_db_unavailable.py::"
            "test_a_read_only_postgresql_makes_the_worker_db_unavailable_not_fatal_until_writable",
        ),
        "the outage is visible within seconds: /ready 503 naming `consumer db_unavailable` and the reason "
        "(database check still `ok`), /consumer `state: db_unavailable` with `detail`, the dashboard shows "
        "it as an error; nothing is committed; once space returns: `running`, /ready 200, all 150 events "
        "stored once (0 duplicates, 0 dead letters). Before: 200 and `running` for the whole outage. "
        "Read-only PostgreSQL (an error of the system, not transient) is `db_unavailable` too, with no "
        "restart and no commit, and resumes by itself (before: fatal, restarts, crash_looping)",
    ),
    Fault(
        "A hung broker while the consumer is behind (the soak's stall under load)",
        "6,001 events (9 MB) on one partition; the first batch is held in a handler, the Tansu process is "
        "stopped with SIGSTOP (connections stay open, nothing answers), the batch released; "
        "`KAFKA_STALL_SECONDS=2`. The same rule without a broker: a worker snapshot behind and idle",
        (
            "test_consumer_stall.py::"
            "test_a_hung_broker_with_a_backlog_makes_the_consumer_stalled_and_not_ready_until_it_answers",
            "test_consumer_unit.py::test_a_worker_behind_that_consumes_nothing_is_stalled_until_it_consumes_again",
            "test_consumer_unit.py::test_a_worker_paused_for_the_database_is_db_unavailable_not_stalled",
        ),
        "within 2 s of the last consumed batch: /consumer `state: stalled` with `detail` (seconds idle, "
        "messages behind, per partition, last poll), /ready 503 `consumer stalled: ...`, `consumer_running` "
        "0, one `consumer_stalled` error line; once the broker answers: `running`, all 6,001 stored, no "
        "restart. A burst after an hour of quiet is not a stall; `db_unavailable` stays itself. Before: "
        "`running` and /ready 200 for as long as nothing moved (the soak's run B: 40-90 s, lag 179,000)",
    ),
    Fault(
        "Compressed batches from real producers",
        "librdkafka producers with `compression.type` snappy, lz4, zstd and gzip (70 events each), a "
        "kafka-python producer with gzip and plain events, consumed by each client",
        ("test_consumer_codecs.py::test_every_codec_from_librdkafka_and_kafka_python_is_stored",),
        "all 420 events stored and committed, 0 dead letters, on both clients; kafka-python decoded all "
        "four codecs (the codec libraries are runtime requirements). Before: kafka-python raised "
        "UnsupportedCodecError for snappy/lz4/zstd and the partition stalled",
    ),
    Fault(
        "A batch whose codec the consumer cannot decode",
        "kafka-python's lz4 check reports the library missing while librdkafka lz4 batches (30 events) "
        "sit between 20 and 20 plain events in one partition",
        ("test_consumer_codecs.py::test_a_batch_whose_codec_is_missing_is_one_dead_letter_and_the_partition_flows_on",),
        "each undecodable batch is ONE dead letter (kind `batch`) naming topic, partition, its offset range "
        "(together 20-49) and `UnsupportedCodecError`; the 40 plain events are stored, all 70 offsets "
        "committed, the consumer never fails. Before: poll() raised, restart from the same offset, 0 stored",
    ),
    Fault(
        "A corrupt compressed batch",
        "a producer whose lz4 encoder writes bytes no decoder accepts (valid CRC), after plain events, with "
        "plain events after it or as the partition's last batch; each client consumes it",
        ("test_consumer_codecs.py::test_a_corrupt_compressed_batch_is_one_dead_letter_on_both_clients",),
        "one dead letter at the batch's first offset, the plain events stored and the offsets committed "
        "past it, on both clients. Before: kafka-python raised for good and librdkafka re-fetched the "
        "batch forever (it reports the error but does not move on); now the confluent consumer steps past it",
    ),
    Fault(
        "Records of aborted transactions",
        "the consumers are built with the default and with `KAFKA_ISOLATION_LEVEL=read_uncommitted`",
        (
            "test_consumer_isolation.py::test_kafka_python_consumer_is_built_with_the_isolation_level",
            "test_consumer_isolation.py::test_confluent_consumer_is_built_with_the_isolation_level",
            "test_consumer_isolation.py::"
            "test_a_transactional_producers_batches_flow_and_its_aborted_records_are_not_stored",
        ),
        "both clients are read_committed unless told otherwise (kafka-python's fetcher and librdkafka's "
        "`isolation.level`); a transactional lz4 producer's committed records and markers flow through "
        "both, its aborted ones are not stored. Tansu hides aborted records from read_uncommitted too "
        "(measured), so the level itself is proven by configuration only",
    ),
    Fault(
        "Malformed messages in the stream",
        "invalid UTF-8, invalid JSON, schema violations, oversize and empty values interleaved with "
        "good events in ONE partition",
        (
            "test_consumer_kafka.py::test_malformed_messages_are_dead_lettered_without_blocking",
            "test_consumer_unit.py::test_every_bad_kind_raises_a_typed_reason",
            "test_consumer_unit.py::test_oversize_is_checked_before_parsing",
        ),
        "each bad message is dead-lettered once with its kind and a reason; the 180 good ones behind "
        "them are stored; all 200 offsets are committed (the partition never stalls); size is checked "
        "before parsing",
    ),
    Fault(
        "Dead letters to a Kafka topic",
        "the producer CLI sends 20 % malformed messages with KAFKA_DLQ_TOPIC set",
        ("test_consumer_kafka.py::test_producer_cli_and_dead_letter_topic",),
        "every malformed message is in the dead-letter table AND copied to the DLQ topic with "
        "`source_topic` and `error` headers; good events and their notifications are all stored",
    ),
    Fault(
        "A handler raising for one event type",
        "a registered handler for `payment.captured` raises `ValueError` every time",
        ("test_consumer_kafka.py::test_failing_handler_is_dead_lettered_after_attempts_and_others_flow",),
        "the message is tried KAFKA_MAX_ATTEMPTS (3) times, then dead-lettered with the exception text; "
        "events of other types keep flowing",
    ),
    Fault(
        "Consumer thread crash, and disable/enable, mid-stream",
        "`poll_once` raises `RuntimeError` once; the consumer is disabled and enabled over HTTP while "
        "events are produced",
        ("test_consumer_kafka.py::test_disable_enable_and_crash_mid_stream_no_loss_no_duplicates",),
        "the supervisor restarts the consumer (restarts = 1, reason shown); disable stops it within 5 s "
        "and nothing is consumed while disabled; 900 of 900 events stored, 0 duplicates, one thread",
    ),
    Fault(
        "Replayed messages",
        "50 messages re-sent with ids already stored; an id twice in one batch; a batch replayed",
        (
            "test_consumer_kafka.py::test_thousand_events_stored_exactly_once_and_committed",
            "test_consumer_store.py::test_replays_add_no_rows_not_even_handler_rows",
        ),
        "storage is idempotent on the event id, handler and notification rows included (1000 rows for 1050 "
        "messages; one handler row per event whatever the deliveries)",
    ),
    Fault(
        "Consumer dying over and over",
        "a fake worker dies on every start (clock driven)",
        (
            "test_consumer_unit.py::test_supervisor_restarts_with_growing_jittered_delays_then_crash_loops",
            "test_consumer_unit.py::test_supervisor_resets_backoff_after_healthy_running",
            "test_consumer_unit.py::test_readiness_grace_and_disable",
        ),
        "restarts follow full-jitter exponential backoff up to the cap, the state becomes `crash_looping` "
        "(metric and reason kept), backoff resets after healthy running, /ready fails after the grace",
    ),
    Fault(
        "Scheduler loop thread dies",
        "the loop's `tick` raises `RuntimeError` in the live app",
        ("test_api.py::test_health_turns_503_when_the_loop_thread_dies",),
        "no silent death: /health and /ready answer 503 with the reason",
    ),
    Fault(
        "A task raises",
        "a task body raises `ValueError` on every run beside a healthy task",
        ("test_scheduler_timing.py::test_exception_is_isolated_recorded_and_the_task_keeps_its_schedule",),
        "the error is recorded in history and stats with its text, the task keeps its schedule, the "
        "other task is unaffected",
    ),
    Fault(
        "A task hangs past its timeout",
        "an async task sleeps 30 s with timeout 0.2 s; a sync task blocks past timeout 0.1 s",
        (
            "test_execution.py::test_async_task_is_cancelled_at_its_timeout",
            "test_execution.py::test_sync_run_past_its_timeout_is_reported_overrunning_and_blocks_later_runs",
            "test_execution.py::test_own_timeout_error_inside_a_task_is_an_error_not_a_timeout",
        ),
        "async runs are cancelled and recorded `timeout`; a sync run is reported overrunning and its "
        "next slots are skipped, never stacked; a task's own TimeoutError is an error",
    ),
    Fault(
        "Process frozen past a slot; overlapping and slow runs",
        "a fake clock jumps 35 s past a slot; a run still in progress when the next slot comes; a 2.5 s "
        "task beside a 1 s one",
        (
            "test_scheduler_timing.py::test_late_slot_is_recorded_missed_and_next_run_is_the_next_grid_point",
            "test_scheduler_timing.py::test_overlapping_run_is_skipped_and_counted",
            "test_execution.py::test_a_slow_task_does_not_delay_another",
        ),
        "a late slot is recorded `missed` with no burst of catch-up runs; an overlapping slot is "
        "`skipped` and counted; a slow task never delays another (< 50 ms late)",
    ),
    Fault(
        "Shutdown with runs in progress",
        "stop() while a 0.3 s run and a never-ending run are in progress (grace 1 s); stop of a process-pool task",
        (
            "test_execution.py::test_stop_waits_for_a_running_task_and_reports_one_that_overruns",
            "test_execution.py::test_process_executor_runs_cpu_work_and_leaves_no_child_after_stop",
        ),
        "stop waits for the short run, reports the overrunning one by name within the grace, and "
        "leaves no child process behind",
    ),
    Fault(
        "Async tasks leaving pending work",
        "200 async runs, each leaving a pending `asyncio.sleep(10)` task behind",
        ("test_execution.py::test_async_runs_use_a_fresh_loop_each_and_leak_no_descriptors",),
        "each run gets a fresh loop, closed after it: ≤ 2 descriptors more after 200 runs",
    ),
    Fault(
        "A task raising what cannot be printed",
        "sync and async tasks raise an exception whose `__str__` and `__repr__` raise, one whose "
        "`__str__` raises SystemExit, a BaseException subclass, a 10 MB message; the executor's own "
        "`invoke`, the lease release or the finished callback raising",
        (
            "test_task_faults.py::test_whatever_a_task_raises_its_run_ends_in_error_and_it_can_run_again",
            "test_task_faults.py::test_over_http_in_a_cluster_the_lease_is_released_and_post_run_is_not_409",
            "test_task_faults.py::test_the_launcher_ends_the_run_and_releases_its_lease_even_when_the_executor_fails",
            "test_task_faults.py::test_a_failing_release_or_callback_neither_loses_the_outcome_nor_the_worker",
            "test_task_faults.py::test_exception_text_never_raises_and_is_bounded",
        ),
        "each run ends `error` with a bounded text (`<unprintable Unprintable>`, ≤ 4,000 characters) "
        "stored in history; the task runs again at once (POST /run 202, not 409, in a cluster); when "
        "the executor itself fails the lease is released and the run still ends, and a failing "
        "release or callback costs neither the outcome nor the worker thread",
    ),
    Fault(
        "Async leftovers that refuse cancellation",
        "an async task leaves a task that swallows every CancelledError (returning at once, or "
        "hanging past its 0.2 s timeout) on a pool of ONE worker thread; a run that swallows its "
        "own timeout; a run cancelled at its timeout while `asyncio.to_thread` blocks",
        (
            "test_task_faults.py::test_a_stubborn_leftover_ends_the_run_and_frees_the_only_worker",
            "test_task_faults.py::test_leftovers_that_swallow_cancellation_are_abandoned_after_the_grace",
            "test_task_faults.py::test_a_run_that_swallows_its_own_timeout_is_abandoned_as_a_timeout",
            "test_task_faults.py::test_a_blocking_call_left_in_a_thread_does_not_hold_the_run",
        ),
        "after a 1 s grace the leftovers (tasks, or the blocked thread's call) are abandoned with "
        "their loop: the run ends `error` (or `timeout`) naming them, `task_leftovers_abandoned` "
        "names the task, and a run of another task starts on the freed worker",
    ),
    Fault(
        "Run history queue full while runs end",
        "the SQLite database held by `BEGIN EXCLUSIVE` with RECORDER_QUEUE_LIMIT 20 while a run is in "
        "progress; 100 records fill the queue, another run starts and ends, then the first run ends",
        ("test_recorder.py::test_a_full_queue_keeps_the_end_of_a_run_whose_start_it_holds",),
        "the end of a run whose start was queued is kept (its row ends `success`, not `running`); "
        'what is dropped and counted (`run_history_dropped_total{reason="queue_full"}`) is the new '
        "run's start, end and audit, which leave no row",
    ),
    Fault(
        "Dashboard framed or injected",
        "the middleware on a tiny app (200, 404, 500, streamed, a route with its own policy); the real "
        "dashboard in chromium under that Content-Security-Policy, violations reported by the page",
        (
            "test_dashboard_security.py::test_every_response_carries_the_security_headers",
            "test_dashboard_security.py::test_the_dashboard_works_under_its_policy_with_no_violation",
            "test_dashboard_security.py::test_a_hidden_tab_does_not_poll_without_the_eval_filter",
        ),
        "every response carries the CSP (own scripts and styles only, `frame-ancestors 'none'`), "
        "nosniff, no-referrer and `X-Frame-Options: DENY`, once; the dashboard stays live with 0 "
        "violations (no eval, no inline style), and a hidden tab still does not poll",
    ),
    Fault(
        "Webhook failing or unreachable",
        "a receiver answering HTTP 500; a URL nothing listens on (timeout 1 s)",
        (
            "test_services.py::test_failed_delivery_backs_off_then_goes_dead",
            "test_services.py::test_unreachable_webhook_is_a_failure_not_a_crash",
        ),
        "a failed delivery backs off, is not retried before it is due, and goes `dead` after "
        "NOTIFY_MAX_ATTEMPTS; an unreachable receiver is a counted failure, not a crashed task",
    ),
    Fault(
        "Requests without or with a wrong token; bad input",
        "every mutating route without a token and with a wrong one; unknown task names, out-of-range "
        "and mistyped PATCH bodies",
        (
            "test_api.py::test_mutating_routes_need_the_admin_token",
            "test_api.py::test_unknown_task_and_invalid_input_get_clear_4xx",
        ),
        "401 with `WWW-Authenticate: Bearer`, 404/409/422 with a JSON `detail` sentence",
    ),
    Fault(
        "Service restarted",
        "the live app is stopped and started again on the same database after disable, PATCH, and "
        "while a run is overdue",
        (
            "test_api.py::test_disable_stops_runs_at_once_and_survives_restart",
            "test_api.py::test_patch_reschedules_at_once_and_survives_restart",
            "test_api.py::test_restart_keeps_the_cadence_or_runs_at_once_when_overdue",
        ),
        "operator changes survive restarts; the cadence is kept, an overdue task runs at once",
    ),
    Fault(
        "Bad configuration and secrets",
        "invalid setting values, an unknown database scheme, a password beside a bad value, invalid "
        "task declarations; a generated admin token",
        (
            "test_definitions.py::test_bad_settings_name_the_variable",
            "test_definitions.py::test_secrets_are_not_echoed_in_setting_errors",
            "test_definitions.py::test_invalid_declarations_name_the_task",
            "test_api.py::test_generated_admin_token_is_written_owner_only_and_never_logged",
        ),
        "start-up fails with a message naming the variable or task; secrets are never echoed or logged; "
        "a generated token file is 0600",
    ),
    Fault(
        "Hostile Kafka messages (poison)",
        "hypothesis: arbitrary bytes and JSON (nesting past 64, dates out of range after UTC conversion, "
        "1e400, 4,300-digit integers, NUL, lone surrogates, oversize keys/values/headers) through the "
        "worker's decode → store path, and named poison messages before valid events in one partition",
        (
            "test_consumer_fuzz.py::test_every_message_is_stored_or_dead_lettered_exactly_once",
            "test_consumer_fuzz.py::test_fuzzed_stream_through_the_broker_never_restarts_the_consumer",
            "test_consumer_poison.py::test_each_poison_message_costs_one_dead_letter_and_blocks_nothing",
            "test_consumer_poison.py::test_live_consumer_survives_poison_without_a_restart",
        ),
        "every message is stored or dead-lettered exactly once on SQLite and PostgreSQL; the consumer never "
        "restarts; the valid events behind a poison message are stored",
    ),
    Fault(
        "A value the database refuses (DataError, IntegrityError)",
        "a batch containing one message whose values the database rejects",
        ("test_consumer_poison.py::test_store_failure_is_isolated_by_bisecting_and_the_culprit_goes_to_the_dlq",),
        "the batch is bisected: the rest is stored, the culprit dead-lettered (`store: ...`) with storable "
        "bytes and copied to the DLQ topic",
    ),
    Fault(
        "kill -9 of the server, at a random moment",
        "the real `uvicorn server:app` is SIGKILLed 6 times while running tasks (5 more with a Kafka "
        "stream flowing), restarted each time, then stopped with SIGTERM",
        (
            "test_kill9.py::test_kill9_loop_loses_no_run",
            "test_kill9.py::test_kill9_loop_with_a_stream_stores_every_event_exactly_once",
        ),
        "every run that started ≥ 200 ms before a kill has a row with a final outcome (`interrupted` for "
        "the ones killed mid-run); every produced event is stored exactly once",
    ),
    Fault(
        "kill -9 of one replica of three",
        "three server processes on one PostgreSQL (and one Kafka group); one is SIGKILLed mid-run / mid-stream",
        (
            "test_cluster.py::test_three_replicas_share_one_schedule_toggles_and_failover",
            "test_cluster_kafka.py::test_kill_9_mid_stream_loses_and_duplicates_no_event",
        ),
        "its run is recorded `interrupted` within the TTL, no slot is lost or run twice, its partitions "
        "move, 0 events lost or stored twice",
    ),
    Fault(
        "A process-pool worker killed (OOM)",
        'SIGKILL of the pool\'s worker process during an `executor="process"` run',
        ("test_process_pool.py::test_a_killed_process_worker_is_recorded_and_the_pool_rebuilt",),
        "that run is recorded `error` (worker process died), the pool is rebuilt, later runs succeed",
    ),
    Fault(
        "Slow clients (slowloris)",
        "500 loopback connections to the real server command line (`devtools/serve.py`, as `make run` and the "
        "Dockerfile serve it) each send a partial request head, then one more header byte per second; on a "
        "keep-alive connection, a second head started after a response and trickled the same way",
        (
            "test_slow_clients.py::test_trickled_request_heads_are_closed_within_the_deadline_and_others_are_served",
            "test_slow_clients.py::test_the_deadline_is_rearmed_for_the_next_request_on_a_keep_alive_connection",
        ),
        "each gets a `408` and is closed 10 s (`REQUEST_HEAD_TIMEOUT`) after its head began, none earlier, "
        "with one `request_head_timeout` warning naming the client; a normal request is answered meanwhile; "
        "with uvicorn's plain h11 protocol all 500 stayed open",
    ),
    Fault(
        "The consumer's bulk inserts beside bursts of SQLite users, and connections reading a large database",
        "the consumer's multi-row INSERTs (1,000, 500, 250 rows) stored, then 12 connections of the service's "
        "pool checked out at once; 6 held at once, each scanning an 8 MiB table (4 times SQLite's default page "
        "cache)",
        (
            "test_sqlite_memory.py::test_the_consumers_bulk_inserts_are_prepared_on_its_own_engine_only",
            "test_sqlite_memory.py::test_each_pooled_connection_caches_at_most_its_bounded_page_cache",
        ),
        "the consumer writes through an engine of its own, so its MiB-sized prepared statements stay on its "
        "connections (the burst adds < 0.25 MiB of statements; on the shared pool every connection took its "
        "turn at them: the soak's RSS growth); SQLite's heap grows by at most 512 KiB of page cache per "
        "connection, not SQLite's default 2 MiB (12 MiB here)",
    ),
    Fault(
        "Power cut right after the consumer committed offsets (SQLite)",
        "not injectable in a test: the consumer's batch is checked to commit with `synchronous=FULL` while "
        "the pooled connection goes back at `NORMAL`",
        ("test_consumer_store.py::test_sqlite_batches_commit_with_synchronous_full",),
        "the batch is fsynced before its offsets are committed, so no event whose offset Kafka counts as "
        "consumed can be lost with the power; other writes stay NORMAL (README, Kafka events)",
    ),
    Fault(
        "Fuzzed HTTP: schemathesis",
        "schema-driven requests from the published OpenAPI (30 examples per operation, random seed), with "
        "and without the token, and on /consumer with a real consumer",
        (
            "test_schemathesis.py::test_fuzzed_requests_get_no_5xx_and_match_the_schema",
            "test_schemathesis.py::test_fuzzed_consumer_routes_with_kafka_get_no_5xx",
        ),
        "no 5xx; every status code, content type, header and body as the schema declares",
    ),
)


def fault_rows() -> list[list[object]]:
    """[fault, how it is injected, tests, what it proves] for the markdown table."""
    rows: list[list[object]] = []
    for fault in FAULTS:
        tests = "<br>".join(f"`{name}`" for name in fault.tests) or "(placeholder)"
        rows.append([fault.fault, fault.how, tests, fault.proves])
    return rows
