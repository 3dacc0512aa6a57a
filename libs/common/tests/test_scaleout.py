"""Background jobs are safe with several replicas: two relays never publish an event twice."""

from __future__ import annotations

import asyncio
import contextlib
import json

from aiokafka import AIOKafkaConsumer

from gridgov_common.bus import Bus
from gridgov_common.db import Database
from gridgov_common.events import make_event
from gridgov_common.lease import Lease
from gridgov_common.outbox import OutboxRelay, record
from gridgov_common.testing import eventually

from .conftest import TEST_TOPIC, Base, NoteRecorded, tables


async def test_two_relays_on_one_database_publish_each_event_once(database_url, kafka_broker):
    db_a = Database(database_url, Base.metadata)
    db_b = Database(database_url, Base.metadata)
    await db_a.create_schema()
    buses = [Bus(kafka_broker.bootstrap, "replica-a"), Bus(kafka_broker.bootstrap, "replica-b")]
    relays = [
        OutboxRelay(db, tables, bus, "svc", poll_seconds=0.05)
        for db, bus in zip((db_a, db_b), buses, strict=True)
    ]
    tasks = [asyncio.create_task(r.run()) for r in relays]
    try:
        for i in range(200):  # writes arrive through both replicas
            db = (db_a, db_b)[i % 2]
            async with db.transaction() as session:
                await record(
                    session,
                    tables,
                    make_event(
                        NoteRecorded(note_id=str(i), text=str(i)),
                        source="t",
                        subject=str(i),
                        gridcode="440306001001001",
                    ),
                )
        consumer = AIOKafkaConsumer(
            TEST_TOPIC,
            bootstrap_servers=kafka_broker.bootstrap,
            auto_offset_reset="earliest",
            group_id="count",
        )
        await consumer.start()
        seen: list[int] = []
        try:

            async def all_seen():
                batch = await consumer.getmany(timeout_ms=300)
                seen.extend(
                    int(json.loads(m.value)["data"]["text"])
                    for msgs in batch.values()
                    for m in msgs
                )
                return len(seen) >= 200

            await eventually(all_seen, timeout=60)
            await asyncio.sleep(1.0)  # anything published twice would arrive by now
            batch = await consumer.getmany(timeout_ms=500)
            seen.extend(
                int(json.loads(m.value)["data"]["text"]) for msgs in batch.values() for m in msgs
            )
        finally:
            await consumer.stop()
        assert sorted(seen) == list(range(200))
        assert seen == sorted(seen)  # one key, one partition: in commit order
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        for bus in buses:
            await bus.close()
        await db_a.dispose()
        await db_b.dispose()


async def test_lease_has_one_holder_and_passes_on_after_expiry(database_url):
    from datetime import timedelta

    db = Database(database_url, Base.metadata)
    await db.create_schema()
    try:
        a = Lease(db, tables, "job", ttl=timedelta(seconds=1), holder="a")
        b = Lease(db, tables, "job", ttl=timedelta(seconds=1), holder="b")
        results = await asyncio.gather(a.acquire(), b.acquire())
        assert sorted(results) == [False, True]
        holder, other = (a, b) if results[0] else (b, a)
        assert await holder.acquire() and not await other.acquire()
        await asyncio.sleep(1.2)
        assert await other.acquire()
        assert not await holder.acquire()
    finally:
        await db.dispose()
