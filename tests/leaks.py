"""Looking for values that must never leave the platform: in answers, logs and events."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition


def text_forms(value: str) -> set[bytes]:
    """A string as it can appear in a body, a log line or an event: UTF-8 and JSON-escaped."""
    return {value.encode(), json.dumps(value)[1:-1].encode()}


def key_forms(key: bytes) -> set[bytes]:
    """A key's bytes written out: hex (either case), base64 and base64url, padded or not."""
    forms = {key.hex().encode(), key.hex().upper().encode(), key}
    for encoded in (base64.b64encode(key), base64.urlsafe_b64encode(key)):
        forms |= {encoded, encoded.rstrip(b"=")}
    return forms


def found(haystack: bytes, needles: dict[bytes, str]) -> list[str]:
    """What each needle found in ``haystack`` stands for (e.g. "phone of 李晓梅")."""
    return sorted({label for needle, label in needles.items() if needle in haystack})


def forms_of(values: dict[str, str]) -> dict[bytes, str]:
    """Every text form of each value, mapped to its label."""
    return {form: label for label, value in values.items() for form in text_forms(value)}


async def every_message(bootstrap: str) -> list[tuple[str, bytes]]:
    """Each message on every topic of the broker (DLQs too), from the beginning, as
    ``(topic, key + headers + value)``. No consumer group: nothing is committed."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in sorted(await consumer.topics())
            for p in consumer.partitions_for_topic(topic) or ()
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        messages: list[tuple[str, bytes]] = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            batches = await consumer.getmany(timeout_ms=1000)
            for tp, records in batches.items():
                for r in records:
                    headers = b"".join(k.encode() + b"=" + (v or b"") for k, v in r.headers)
                    messages.append((tp.topic, b"\n".join((r.key or b"", headers, r.value or b""))))
        return messages
    finally:
        await consumer.stop()


def log_text(records: Iterable[logging.LogRecord]) -> list[tuple[str, bytes]]:
    """Each record as ``(logger, everything it holds)``: the message, its arguments, any
    ``extra`` fields and the formatted traceback."""
    formatter = logging.Formatter()
    out = []
    for record in records:
        text = formatter.format(record) + "\n" + repr(vars(record))
        out.append((record.name, text.encode()))
    return out
