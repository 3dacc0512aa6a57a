"""Batch handlers: a run of consecutive events in one call, exactly once, failures alone."""

from __future__ import annotations

from typing import Any

from aiokafka import ConsumerRecord
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gridgov_common.bus import Bus
from gridgov_common.db import Database
from gridgov_common.events import CloudEvent, dlq_topic, make_event
from gridgov_common.inbox import InboxConsumer

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
