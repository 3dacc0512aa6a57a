"""Batch handlers: a run of consecutive events in one call, exactly once, failures alone."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
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

PARTITION = TopicPartition(TEST_TOPIC, 0)


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


def note(text: str) -> CloudEvent:
    return make_event(NoteRecorded(note_id=text, text=text), source="t", subject=text)


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


@dataclass
class Reader:
    """An inbox with its own consumer assigned partition 0 of the test topic."""

    db: Database
    bus: Bus
    inbox: InboxConsumer
    consumer: AIOKafkaConsumer
    task: asyncio.Task[None] | None = None

    async def publish(self, texts: str) -> None:
        for text in texts:
            await self.bus.publish(TEST_TOPIC, "k", note(text).model_dump_json().encode())

    def consume(self) -> None:
        self.task = asyncio.create_task(self.inbox.consume(self.consumer))

    async def received(self) -> list[str]:
        async with self.db.sessions() as session:
            return sorted((await session.scalars(select(ReceivedNote.text))).all())


@contextlib.asynccontextmanager
async def reader(
    database_url: str, bootstrap: str, group: str, **options: Any
) -> AsyncIterator[Reader]:
    db = Database(database_url, Base.metadata)
    await db.create_schema()
    bus = Bus(bootstrap, group)
    inbox = InboxConsumer(db, tables, bus, group, {NoteRecorded.event_type: Recorder()}, **options)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest"
    )
    r = Reader(db, bus, inbox, consumer)
    try:
        await consumer.start()
        consumer.assign([PARTITION])
        yield r
    finally:
        if r.task is not None:
            r.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await r.task
        await consumer.stop()
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
    async with reader(database_url, kafka_broker.bootstrap, "rereadtest") as r:
        await r.publish("xyz")  # the restarted broker's partition: offsets 0-2
        if committed is not None:
            await r.consumer.commit({PARTITION: committed})
        r.consumer.seek(PARTITION, 40)  # where this consumer was before the broker lost everything
        r.consume()

        async def texts() -> list[str]:
            got = await r.received()
            return got if "z" in got else []

        # Records arrive in offset order: once "z" is in, whatever was read before it is too.
        assert await eventually(texts, timeout=20) == expected


async def test_a_partition_the_restarted_broker_refilled_past_the_position_is_read_again(
    database_url, kafka_broker
):
    """The broker restarts empty and its new log grows past this consumer's position before
    the consumer fetches again: the offsets look fine, and without the audit the consumer
    would go on from its old position and skip the new log's first records. The audit reads
    back what was read last before the restart, finds it gone, and the partition is read
    again from the start."""
    async with reader(database_url, kafka_broker.bootstrap, "audittest", audit_seconds=0.3) as r:

        async def received(n: int) -> list[str]:
            got = await r.received()
            return got if len(got) >= n else []

        await r.publish("abcde")
        r.consume()
        assert await eventually(lambda: received(5), timeout=20) == list("abcde")
        await asyncio.sleep(1.0)  # an audit has taken note of what was read last
        r.consumer.pause(PARTITION)  # so that it fetches nothing until the new log is longer
        kafka_broker.stop()
        kafka_broker.start()  # same port, empty
        await r.bus.reset()
        await r.publish("tuvwxyz")  # offsets 0-6: the consumer's position (5) is inside
        r.consumer.resume(PARTITION)
        assert await eventually(lambda: received(12), timeout=30) == sorted("abcdetuvwxyz")
