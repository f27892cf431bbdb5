"""decode_batch: one poll result split into decoded messages and dead letters.

Every message ends up in exactly one of the two lists, whatever its bytes: a refused message
becomes a dead letter with its reason (one log line each), and a bug in the decoder costs that
message only, never the partition behind it. A record batch the client could not decode at all
(clients/batches.py) is one dead letter for the whole batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kafka.structs import TopicPartition

from servicescheduler.consumers.clients.batches import UndecodableBatch
from servicescheduler.consumers.decoding.contracts import TopicContract
from servicescheduler.consumers.decoding.deadletter import DeadRow
from servicescheduler.consumers.decoding.events import BATCH, DECODE, BadMessage, decode_key
from servicescheduler.consumers.decoding.topic_records import record_decoder
from servicescheduler.consumers.decoding.wire import decode_event
from servicescheduler.consumers.storing.handlers import MessageMeta
from servicescheduler.consumers.storing.store import Prepared
from servicescheduler.logs import get_logger
from servicescheduler.support.clock import utcnow

log = get_logger(__name__)


def decode_batch(
    records: dict[TopicPartition, list[Any]],
    *,
    max_bytes: int,
    contracts: Mapping[str, TopicContract] | None = None,
) -> tuple[list[Prepared], list[DeadRow]]:
    """Decoded messages (in partition and offset order) and the dead letters of `records`.

    A topic with a contract (`contracts`, by topic) is decoded by it; others are the envelope.
    """
    prepared: list[Prepared] = []
    dead: list[DeadRow] = []
    received_at = utcnow()
    for tp, messages in records.items():
        contract = contracts.get(tp.topic) if contracts else None  # once per partition, not per message
        if contract is not None:
            _decode_declared(contract, tp, messages, max_bytes, received_at, prepared, dead)
            continue
        for msg in messages:
            if isinstance(msg, UndecodableBatch):  # its records are lost to this client: one entry for all
                error = f"record batch at offsets {msg.offsets} could not be decoded: {msg.reason}"
                dead.append(DeadRow(tp.topic, tp.partition, msg.first_offset, None, None, BATCH, error))
                continue  # logged where it was found (consumer_batch_undecodable)
            try:
                event = decode_event(msg, max_bytes=max_bytes)
            except Exception as exc:  # a decoder bug must cost this message, never the partition
                dead.append(_dead_letter(tp, msg, exc))
                continue
            meta = MessageMeta(tp.topic, tp.partition, msg.offset, decode_key(msg.key), received_at)
            prepared.append(Prepared(event, meta, msg.key, msg.value))
    return prepared, dead


def _decode_declared(
    contract: TopicContract,
    tp: TopicPartition,
    messages: list[Any],
    max_bytes: int,
    received_at: Any,
    prepared: list[Prepared],
    dead: list[DeadRow],
) -> None:
    """The messages of one partition of a declared topic, by its contract (same guarantees)."""
    decode = record_decoder(contract)
    # Without a handler nobody reads the payload: not kept, so the model instances die at once
    # instead of living through the batch (objects that survive are what the GC walks, again).
    keep = contract.handler is not None
    for msg in messages:
        if isinstance(msg, UndecodableBatch):
            error = f"record batch at offsets {msg.offsets} could not be decoded: {msg.reason}"
            dead.append(DeadRow(tp.topic, tp.partition, msg.first_offset, None, None, BATCH, error))
            continue
        try:
            event, payload = decode(msg, max_bytes)
        except Exception as exc:  # a bug here must cost this message, never the partition
            dead.append(_dead_letter(tp, msg, exc))
            continue
        meta = MessageMeta(tp.topic, tp.partition, msg.offset, decode_key(msg.key), received_at)
        prepared.append(Prepared(event, meta, msg.key, msg.value, contract, payload if keep else None))


def _dead_letter(tp: TopicPartition, msg: Any, exc: Exception) -> DeadRow:
    """The dead letter of one message that could not be decoded, logged once: a BadMessage with
    its kind and reason (a warning), anything else as a decoder bug (an error with the trace).
    Called from inside the `except` block that caught `exc`."""
    if isinstance(exc, BadMessage):
        log.warning(
            "consumer_bad_message",
            topic=tp.topic,
            partition=tp.partition,
            offset=msg.offset,
            kind=exc.kind,
            reason=exc.reason[:500],
        )
        return DeadRow(tp.topic, tp.partition, msg.offset, msg.key, msg.value, exc.kind, exc.reason)
    error = f"{type(exc).__name__}: {exc}"
    log.error(
        "consumer_decode_failed",
        topic=tp.topic,
        partition=tp.partition,
        offset=msg.offset,
        error=error[:500],
        exc_info=True,  # called from the except block: the trace is the current exception
    )
    return DeadRow(tp.topic, tp.partition, msg.offset, msg.key, msg.value, DECODE, error)
