"""OpenTelemetry spans: task runs, Kafka batches and messages, webhook deliveries.

Only the OpenTelemetry *API* is used. Without an SDK (the host never called
`trace.set_tracer_provider`) the global provider is the API's proxy, and every entry point here
returns after one isinstance check: no span object, no header parsing, no per-message work
(bench/tracing measures it). The check is made per run and per batch, not once at start-up, so
a host that configures its SDK after the service starts is still traced.

Trace context travels as W3C `traceparent` text: read from a Kafka record's headers, kept on
the message's notification row, sent with the webhook POST that delivers it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, NoOpTracerProvider, ProxyTracerProvider, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from servicescheduler.logs import get_logger

log = get_logger(__name__)

# A ProxyTracer: it starts delegating to the real provider as soon as the host sets one.
_tracer = trace.get_tracer("servicescheduler")
_w3c = TraceContextTextMapPropagator()
TRACEPARENT = "traceparent"
_ERROR_CHARS = 500  # a status description is for a human; the run history keeps the full text


_UNSET = object()
_DEFAULTS = (ProxyTracerProvider, NoOpTracerProvider)


def enabled() -> bool:
    """True when an SDK tracer provider is installed (the API's defaults record nothing).

    Reads the API's global directly: `trace.get_tracer_provider()` also looks up an environment
    variable on every call, 3 µs that doubled the cost of a no-op run (bench/tracing)."""
    provider = getattr(trace, "_TRACER_PROVIDER", _UNSET)
    if provider is _UNSET:  # an API without that global: the public, slower way
        provider = trace.get_tracer_provider()
    return provider is not None and not isinstance(provider, _DEFAULTS)


if os.environ.get("OTEL_PYTHON_TRACER_PROVIDER"):
    trace.get_tracer_provider()  # the API installs a provider named so on first use: now, for enabled()


def context_from_traceparent(traceparent: str | None) -> Context | None:
    """The remote parent a W3C `traceparent` names, or None (absent or malformed: ignored)."""
    if not traceparent:
        return None
    ctx = _w3c.extract({TRACEPARENT: traceparent})
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


def traceparent_of(span: Span) -> str | None:
    """`span`'s context as W3C `traceparent` text (None for an invalid context)."""
    sc = span.get_span_context()
    if not sc.is_valid:
        return None
    return f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{int(sc.trace_flags):02x}"


def request_traceparent(headers: Mapping[str, str]) -> str | None:
    """The context of the request being handled: the current span (the host's FastAPI
    instrumentation) or else the request's own `traceparent` header (as W3C text)."""
    current = traceparent_of(trace.get_current_span())
    return current or (headers.get(TRACEPARENT) if context_from_traceparent(headers.get(TRACEPARENT)) else None)


# ---------------------------------------------------------------------------- task runs
def start_run(task: str, run_id: str, cause: str, attempt: int, link: str | None) -> Span | None:
    """A span for one run of `task` (None when tracing is off): a new trace, linked to the
    request that asked for it (`link`, a traceparent) when there was one."""
    if not enabled():
        return None
    linked = context_from_traceparent(link)
    links = [Link(trace.get_current_span(linked).get_span_context())] if linked is not None else None
    return _tracer.start_span(
        f"run {task}",
        context=Context(),  # a run is its own trace: not a child of whatever the thread last held
        kind=SpanKind.INTERNAL,
        links=links,
        attributes={
            "servicescheduler.task": task,
            "servicescheduler.run_id": run_id,
            "servicescheduler.cause": str(cause),  # a plain str for exporters, not the StrEnum
            "servicescheduler.attempt": attempt,
        },
    )


def activated(span: Span | None) -> contextlib.AbstractContextManager[Any]:
    """Makes `span` current (spans the task makes are its children); nothing for None."""
    if span is None:
        return contextlib.nullcontext()
    return trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False)


def end_run(span: Span | None, outcome: str, error: str | None = None, exception: BaseException | None = None) -> None:
    """Ends a run span with its outcome; status error (with the exception) unless it succeeded
    or never ran. Never raises: tracing must not change how a run ends."""
    if span is None:
        return
    try:
        span.set_attribute("servicescheduler.outcome", str(outcome))
        if outcome in ("error", "timeout", "interrupted"):
            if exception is not None:
                span.record_exception(exception)
            span.set_status(Status(StatusCode.ERROR, (error or outcome)[:_ERROR_CHARS]))
        span.end()
    except Exception as exc:  # a broken exporter or processor is the host's; the run goes on
        log.warning("tracing_failed", where="run", error=f"{type(exc).__name__}: {exc}")


# ---------------------------------------------------------------------------- Kafka
def _header(headers: Any, name: str) -> str | None:
    """A header's value as text from a record's headers ([(name, bytes)], any client), or None."""
    for key, value in headers or ():
        if key == name and value:
            try:
                return value if isinstance(value, str) else bytes(value).decode("ascii")
            except (UnicodeDecodeError, TypeError):
                return None
    return None


class BatchTrace:
    """The spans of one consumed batch: a batch span, and one `process` span per record, each
    the child of its producer's context (`traceparent` header) or else of the batch span. The
    message spans end when the batch is stored (or given up), so they cover the processing."""

    def __init__(self, records: Mapping[Any, list[Any]], group: str) -> None:
        count = sum(len(m) for m in records.values())
        topics = sorted({tp.topic for tp in records})
        self.batch = _tracer.start_span(
            f"process {','.join(topics)}",
            context=Context(),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.consumer.group.name": group,
                "messaging.batch.message_count": count,
            },
        )
        batch_link = [Link(self.batch.get_span_context())]
        batch_ctx = trace.set_span_in_context(self.batch, Context())
        self.messages: dict[tuple[str, int, int], Span] = {}
        for tp, messages in records.items():
            for msg in messages:
                if not hasattr(msg, "headers"):
                    continue
                parent = context_from_traceparent(_header(msg.headers, TRACEPARENT))
                self.messages[(tp.topic, tp.partition, msg.offset)] = _tracer.start_span(
                    f"process {tp.topic}",
                    context=parent if parent is not None else batch_ctx,
                    kind=SpanKind.CONSUMER,
                    links=batch_link if parent is not None else None,
                    # What the semantic conventions require, no more: the SDK cleans every
                    # attribute of every span, half the cost of a span (bench/tracing).
                    attributes={
                        "messaging.system": "kafka",
                        "messaging.operation.type": "process",
                        "messaging.destination.name": tp.topic,
                        "messaging.kafka.destination.partition": tp.partition,
                        "messaging.kafka.message.offset": msg.offset,
                        "messaging.consumer.group.name": group,
                    },
                )

    def traceparent(self, topic: str, partition: int, offset: int) -> str | None:
        """The W3C context of a message's process span (what its notification carries)."""
        span = self.messages.get((topic, partition, offset))
        return None if span is None else traceparent_of(span)

    def end(self, dead: Mapping[tuple[str, int, int], str], error: str | None = None) -> None:
        """Ends every span: `dead` maps dead-lettered positions to their reason; `error` (the batch
        was not stored: the database failed, or the consumer stopped) marks them all."""
        try:
            for where, span in self.messages.items():
                reason = error or dead.get(where)
                if reason is not None:
                    span.set_status(Status(StatusCode.ERROR, reason[:_ERROR_CHARS]))
                span.end()
            if error is not None:
                self.batch.set_status(Status(StatusCode.ERROR, error[:_ERROR_CHARS]))
            self.batch.set_attribute("servicescheduler.dead_lettered", len(dead))
            self.batch.end()
        except Exception as exc:
            log.warning("tracing_failed", where="batch", error=f"{type(exc).__name__}: {exc}")


# ---------------------------------------------------------------------------- webhook delivery
@contextlib.contextmanager
def delivery(traceparent: str | None, notification_id: int, url: str) -> Iterator[dict[str, str]]:
    """Around one webhook POST: yields the trace headers to send. With tracing on, a CLIENT span
    in the message's trace (linked to the current run) is current and its context is sent; with
    tracing off, a stored traceparent is passed through unchanged (the trace still joins up)."""
    if not enabled():
        yield {TRACEPARENT: traceparent} if traceparent else {}
        return
    parent = context_from_traceparent(traceparent)
    target = urlsplit(url)
    run = trace.get_current_span().get_span_context()
    span = _tracer.start_span(
        "POST",
        context=parent if parent is not None else Context(),
        kind=SpanKind.CLIENT,
        links=[Link(run)] if run.is_valid else None,
        attributes={
            "http.request.method": "POST",
            # Host and port only: a webhook URL's path or query often carries its secret.
            "server.address": target.hostname or "",
            "server.port": target.port or (443 if target.scheme == "https" else 80),
            "servicescheduler.notification_id": notification_id,
        },
    )
    headers: dict[str, str] = {}
    _w3c.inject(headers, context=trace.set_span_in_context(span))
    try:
        with trace.use_span(span, end_on_exit=False):
            yield headers
    except BaseException as exc:
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS]))
        raise
    finally:
        span.end()


def delivery_failed(error: str) -> None:
    """Marks the current delivery span failed (the webhook answered an error, or timed out)."""
    trace.get_current_span().set_status(Status(StatusCode.ERROR, error[:_ERROR_CHARS]))
