"""OpenTelemetry: spans recorded by the SDK's in-memory exporter, against the real app, a real
Tansu broker (both clients) and a real webhook receiver on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from devtools.webhook import WebhookReceiver
from servicescheduler import tracing
from servicescheduler.scheduling.registry import TaskRegistry
from servicescheduler.scheduling.triggers import every
from tests.conftest import AUTH, wait_until

PRODUCER_TRACE = 0x4BF92F3577B34DA6A3CE929D0E0E4736
PRODUCER_SPAN = 0x00F067AA0BA902B7
PRODUCER_TRACEPARENT = f"00-{PRODUCER_TRACE:032x}-{PRODUCER_SPAN:016x}-01"
REQUEST_TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class _Switch(SpanProcessor):
    """Forwards ended spans to the exporter of the test that armed it. The global provider can be
    set once per process: installed once, each test arms its own exporter."""

    def __init__(self) -> None:
        self.target: SimpleSpanProcessor | None = None

    def on_end(self, span: ReadableSpan) -> None:
        target = self.target
        if target is not None:
            target.on_end(span)


_switch = _Switch()
_install = threading.Lock()


_provider = TracerProvider()
_provider.add_span_processor(_switch)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """An in-memory exporter receiving every span ended during the test (the SDK installed).

    The API lets a process set its provider once; the SDK is put in place and taken out again
    through the global the API reads, so the tests after this one run untraced, as without an SDK
    (tracing on costs the consumer ~5x: traced Kafka tests would crawl). One provider object for
    every test: the API's proxy tracers keep the first real tracer they were given."""
    with _install:
        assert not tracing.enabled(), "an SDK is installed already"
        trace._TRACER_PROVIDER = _provider
    exporter = InMemorySpanExporter()
    _switch.target = SimpleSpanProcessor(exporter)
    try:
        yield exporter
    finally:
        _switch.target = None
        with _install:
            trace._TRACER_PROVIDER = None
        assert not tracing.enabled()


def _named(exporter: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name.startswith(prefix)]


def _registry() -> TaskRegistry:
    registry = TaskRegistry()

    def fine() -> None:
        return None

    def broken() -> None:
        raise ValueError("the ledger does not balance")

    registry.register("fine", fine, trigger=every(1).hours, enabled=False)
    registry.register("broken", broken, trigger=every(1).hours, enabled=False)
    return registry


def test_task_run_spans_carry_outcome_attempt_and_link_to_the_request(live_app, make_settings, spans) -> None:
    app = live_app(make_settings(), _registry())
    ok = app.client.post("/tasks/fine/run", headers={**AUTH, "traceparent": REQUEST_TRACEPARENT})
    failed = app.client.post("/tasks/broken/run", headers=AUTH)
    assert ok.status_code == failed.status_code == 202

    fine = wait_until(lambda: _named(spans, "run fine"))[0]
    assert fine.attributes is not None
    assert fine.attributes["servicescheduler.task"] == "fine"
    assert fine.attributes["servicescheduler.run_id"] == ok.json()["run_id"]
    assert fine.attributes["servicescheduler.cause"] == "manual"
    assert fine.attributes["servicescheduler.attempt"] == 1
    assert fine.attributes["servicescheduler.outcome"] == "success"
    assert fine.status.status_code is StatusCode.UNSET
    assert fine.parent is None  # a run is its own trace, linked to the request that asked for it
    [link] = fine.links
    assert f"{link.context.trace_id:032x}" == REQUEST_TRACEPARENT.split("-")[1]

    broken = wait_until(lambda: _named(spans, "run broken"))[0]
    assert broken.attributes is not None and broken.attributes["servicescheduler.outcome"] == "error"
    assert broken.status.status_code is StatusCode.ERROR
    assert "the ledger does not balance" in (broken.status.description or "")
    [event] = [e for e in broken.events if e.name == "exception"]
    assert event.attributes is not None and event.attributes["exception.type"] == "ValueError"

    # FastAPI's own telemetry traced each request (the first one as a child of the caller's
    # traceparent): each run links to the span current in the handler that triggered it.
    def request_of(run: ReadableSpan) -> ReadableSpan:
        [link] = run.links

        # The request's spans end as its response is sent: maybe a moment after the client has it.
        def server_span() -> list[ReadableSpan]:
            finished = spans.get_finished_spans()
            server = [s for s in finished if s.kind is SpanKind.SERVER and s.context.trace_id == link.context.trace_id]
            linked = [s for s in finished if s.context.span_id == link.context.span_id]  # a span of the request
            return server if linked else []

        [server] = wait_until(server_span)
        assert server.attributes is not None and server.attributes["http.route"] == "/tasks/{name}/run"
        return server

    assert request_of(fine).parent is not None
    assert request_of(fine).parent.span_id == int(REQUEST_TRACEPARENT.split("-")[2], 16)
    assert request_of(broken).parent is None


def test_a_retry_run_span_carries_its_attempt(live_app, make_settings, spans) -> None:
    registry = TaskRegistry()
    calls: list[int] = []

    def flaky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first attempt fails")

    # A first-seen enabled task runs at start-up: that run fails, its retry (attempt 2) succeeds.
    registry.register("flaky", flaky, trigger=every(1).hours, retries=1, retry_backoff=0.05)
    live_app(make_settings(), registry)
    runs = wait_until(lambda: _named(spans, "run flaky") if len(_named(spans, "run flaky")) == 2 else None)
    attempts = {s.attributes["servicescheduler.attempt"]: dict(s.attributes) for s in runs if s.attributes is not None}
    assert attempts[1]["servicescheduler.outcome"] == "error" and attempts[1]["servicescheduler.cause"] == "startup"
    assert attempts[2]["servicescheduler.outcome"] == "success" and attempts[2]["servicescheduler.cause"] == "retry"


@pytest.mark.parametrize("client", ["kafka-python", "confluent-kafka"])
def test_a_records_traceparent_reaches_the_process_span_and_the_webhook(
    live_app, kafka_topic, kafka_settings, kafka_producer, spans, client, database_url
) -> None:
    """SQLite stores ahead on a second thread, PostgreSQL stores inline: both end the spans."""
    with WebhookReceiver(status=204) as receiver:
        settings = kafka_settings(notify_webhook_url=receiver.url, kafka_client=client, database_url=database_url)
        app = live_app(settings)
        wait_until(lambda: app.client.get("/consumer").json()["assigned_partitions"], timeout=20)
        event = {"id": "t1", "type": "order.created", "data": {}, "notify": {"channel": "webhook", "recipient": "a"}}
        kafka_producer.client.send(
            kafka_topic,
            value=json.dumps(event).encode(),
            key=b"t1",
            headers=[("traceparent", PRODUCER_TRACEPARENT.encode())],
        )
        kafka_producer.client.send(kafka_topic, value=json.dumps({**event, "id": "t2", "notify": None}).encode())
        kafka_producer.client.flush(timeout=30)
        wait_until(lambda: receiver.headers, timeout=10)

        sent = receiver.headers[0]["traceparent"]
        _, trace_id, parent_id, _ = sent.split("-")
        assert int(trace_id, 16) == PRODUCER_TRACE  # the webhook POST continues the producer's trace

        process = wait_until(lambda: [s for s in _named(spans, "process") if s.kind is SpanKind.CONSUMER])
        [message] = [s for s in process if s.context.trace_id == PRODUCER_TRACE]
        assert message.parent is not None and message.parent.span_id == PRODUCER_SPAN
        assert message.attributes is not None
        assert message.attributes["messaging.system"] == "kafka"
        assert message.attributes["messaging.destination.name"] == kafka_topic
        assert message.attributes["messaging.consumer.group.name"] == app.application.settings.kafka_group_id
        assert isinstance(message.attributes["messaging.kafka.destination.partition"], int)
        assert isinstance(message.attributes["messaging.kafka.message.offset"], int)
        # The other record had no traceparent: its span is the batch's child, in another trace.
        others = [s for s in process if s.context.trace_id != PRODUCER_TRACE and s.parent is not None]
        assert any(s.attributes and s.attributes.get("messaging.batch.message_count") is None for s in others)

        post = wait_until(lambda: [s for s in _named(spans, "POST") if s.kind is SpanKind.CLIENT])[0]
        assert post.context.trace_id == PRODUCER_TRACE and int(parent_id, 16) == post.context.span_id
        assert post.parent is not None and post.parent.span_id == message.context.span_id
        assert post.links and post.links[0].context.trace_id != PRODUCER_TRACE  # the notifications run


def test_without_an_sdk_nothing_is_traced_and_the_run_still_links_nothing() -> None:
    """A fresh interpreter (the global provider cannot be unset): the API's default provider."""
    code = """
from servicescheduler import tracing
assert not tracing.enabled()
assert tracing.start_run("t", "r", "manual", 1, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01") is None
with tracing.delivery("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", 1, "http://127.0.0.1/") as h:
    assert h == {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}, h
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
