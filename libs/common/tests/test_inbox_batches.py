"""Batch handlers: a run of consecutive events in one call, exactly once, failures alone."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gridgov_common.bus import Bus
from gridgov_common.db import Database
from gridgov_common.events import CloudEvent, dlq_topic, make_event
from gridgov_common.inbox import InboxConsumer
from gridgov_common.testing import eventually

from .conftest import TEST_TOPIC, Base, NoteRecorded, ReceivedNote, tables


class Recorder:
    """Records each note; a note saying "bad" always fails."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    async def __call__(self, session: AsyncSession, evt: CloudEvent, payload: Any) -> None:
        self.calls.append(("one", [payload.text]))
        self.write(session, evt, payload)

    async def handle_batch(self, session: AsyncSession, events: list[tuple[CloudEvent, Any]]):
        self.calls.append(("batch", [p.text for _, p in events]))
        for evt, payload in events:
            self.write(session, evt, payload)

    @staticmethod
    def write(session: AsyncSession, evt: CloudEvent, payload: Any) -> None:
        if payload.text == "bad":
            raise RuntimeError("bad note")
        session.add(ReceivedNote(event_id=evt.id, key="k", text=payload.text))


def records(events: list[CloudEvent]) -> list[ConsumerRecord]:
    out = []
    for offset, evt in enumerate(events):
        value = evt.model_dump_json().encode()
        out.append(
            ConsumerRecord(
                topic=TEST_TOPIC,
                partition=0,
                offset=offset,
                timestamp=0,
                timestamp_type=0,
                key=b"k",
                value=value,
                checksum=None,
                serialized_key_size=1,
                serialized_value_size=len(value),
                headers=(),
            )
        )
    return out


async def test_runs_go_in_one_call_once_and_a_failing_run_is_retried_event_by_event(
    database_url, kafka_broker
):
    db = Database(database_url, Base.metadata)
    await db.create_schema()
    bus = Bus(kafka_broker.bootstrap, "batch-test")
    await bus.ensure_topics([TEST_TOPIC, dlq_topic(TEST_TOPIC, "batchtest")], 1, 1)
    handler = Recorder()
    consumer = InboxConsumer(
        db,
        tables,
        bus,
        "batchtest",
        {NoteRecorded.event_type: handler},
        max_attempts=2,
        retry_base_seconds=0.01,
    )
    try:

        def note(text: str) -> CloudEvent:
            return make_event(NoteRecorded(note_id=text, text=text), source="t", subject=text)

        a, b, c = note("a"), note("b"), note("c")
        # One run of three, the first one redelivered inside the same batch.
        await consumer.process_batch(records([a, b, a, c]))
        assert handler.calls == [("batch", ["a", "b", "c"])]
        # A batch with a failing event: its run is rolled back and retried one by one.
        handler.calls.clear()
        d, bad, e = note("d"), note("bad"), note("e")
        await consumer.process_batch(records([a, d, bad, e]))
        assert handler.calls == [
            ("batch", ["d", "bad", "e"]),
            ("one", ["d"]),
            ("one", ["bad"]),
            ("one", ["bad"]),  # max_attempts=2, then the DLQ
            ("one", ["e"]),
        ]
        async with db.sessions() as session:
            texts = (await session.scalars(select(ReceivedNote.text))).all()
            inbox = await session.scalar(select(func.count()).select_from(tables.inbox))
        assert sorted(texts) == ["a", "b", "c", "d", "e"]
        assert inbox == 5
    finally:
        await bus.close()
        await db.dispose()


@pytest.mark.parametrize(
    ("committed", "expected"),
    [(None, ["x", "y", "z"]), (2, ["z"])],
    ids=["nothing-committed-reads-from-the-start", "reads-from-a-commit-below-the-end"],
)
async def test_a_partition_that_ends_before_the_consumers_position_is_read_again(
    database_url, kafka_broker, committed, expected
):
    """A broker that restarted empty holds fewer records than the consumer had read. Kafka
    would answer OFFSET_OUT_OF_RANGE; the embedded broker answers nothing, so without a check
    the consumer waits at its old position and skips what is written below it. A commit
    below the end (Kafka's end lagging after a leader change) is where it reads again from."""
    db = Database(database_url, Base.metadata)
    await db.create_schema()
    bus = Bus(kafka_broker.bootstrap, "reread-test")
    inbox = InboxConsumer(db, tables, bus, "rereadtest", {NoteRecorded.event_type: Recorder()})
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_broker.bootstrap, group_id="rereadtest")
    tp = TopicPartition(TEST_TOPIC, 0)
    task = None
    try:
        for text in ("x", "y", "z"):  # the restarted broker's partition: offsets 0-2
            evt = make_event(NoteRecorded(note_id=text, text=text), source="t", subject=text)
            await bus.publish(TEST_TOPIC, "k", evt.model_dump_json().encode())
        await consumer.start()
        consumer.assign([tp])
        if committed is not None:
            await consumer.commit({tp: committed})
        consumer.seek(tp, 40)  # where this consumer was before the broker lost everything
        task = asyncio.create_task(inbox.consume(consumer))

        async def texts() -> list[str]:
            async with db.sessions() as session:
                got = sorted((await session.scalars(select(ReceivedNote.text))).all())
            return got if "z" in got else []

        # Records arrive in offset order: once "z" is in, whatever was read before it is too.
        assert await eventually(texts, timeout=20) == expected
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await consumer.stop()
        await bus.close()
        await db.dispose()


async def test_a_partition_the_restarted_broker_refilled_past_the_position_is_read_again(
    database_url, kafka_broker
):
    """The broker restarts empty and its new log grows past this consumer's position before
    the consumer fetches again: the offsets look fine, and without the audit the consumer
    would go on from its old position and skip the new log's first records. The audit reads
    back what was read last before the restart, finds it gone, and the partition is read
    again from the start."""
    db = Database(database_url, Base.metadata)
    await db.create_schema()
    bus = Bus(kafka_broker.bootstrap, "audit-test")
    handlers = {NoteRecorded.event_type: Recorder()}
    inbox = InboxConsumer(db, tables, bus, "audittest", handlers, audit_seconds=0.3)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_broker.bootstrap, group_id="audittest", auto_offset_reset="earliest"
    )
    tp = TopicPartition(TEST_TOPIC, 0)
    task = None

    async def publish(texts: str) -> None:
        for text in texts:
            evt = make_event(NoteRecorded(note_id=text, text=text), source="t", subject=text)
            await bus.publish(TEST_TOPIC, "k", evt.model_dump_json().encode())

    async def received(n: int) -> list[str]:
        async with db.sessions() as session:
            got = sorted((await session.scalars(select(ReceivedNote.text))).all())
        return got if len(got) >= n else []

    try:
        await publish("abcde")
        await consumer.start()
        consumer.assign([tp])
        task = asyncio.create_task(inbox.consume(consumer))
        assert await eventually(lambda: received(5), timeout=20) == list("abcde")
        await asyncio.sleep(1.0)  # an audit has taken note of what was read last
        consumer.pause(tp)  # so that it fetches nothing until the new log is longer
        kafka_broker.stop()
        kafka_broker.start()  # same port, empty
        await bus.reset()
        await publish("tuvwxyz")  # offsets 0-6: the consumer's position (5) is inside
        consumer.resume(tp)
        assert await eventually(lambda: received(12), timeout=30) == sorted("abcdetuvwxyz")
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await consumer.stop()
        await bus.close()
        await db.dispose()
