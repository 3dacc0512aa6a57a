"""Outbox → broker → inbox: throughput and end-to-end latency, with a bare-Kafka baseline.

    .venv/bin/python -m bench.outbox_pipeline [--events 5000] [--rate 200] [--seconds 15]

Prints one JSON object. The pipeline is the real one every service uses (SQLite outbox,
relay with acks=all, Tansu broker, inbox consumer committing per event); the baseline is
aiokafka alone (produce → consume, no database) on the same broker in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import MetaData

from gridgov_common.bus import Bus
from gridgov_common.db import Database, PlatformTables
from gridgov_common.events import CloudEvent, EventPayload, event, make_event
from gridgov_common.inbox import InboxConsumer
from gridgov_common.outbox import OutboxRelay, record
from gridgov_common.testing import Broker

TOPIC = "bench.v1"


@event("bench.tick", TOPIC)
class Tick(EventPayload):
    seq: int
    run: str


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Pipeline:
    def __init__(self, tmp: Path, bootstrap: str) -> None:
        # Only the platform tables (outbox, inbox, ...), each side in its own database.
        metadata, consumer_metadata = MetaData(), MetaData()
        self.tables = PlatformTables(metadata)
        self.consumer_tables = PlatformTables(consumer_metadata)
        self.db = Database(f"sqlite+aiosqlite:///{tmp}/producer.db", metadata)
        self.consumer_db = Database(f"sqlite+aiosqlite:///{tmp}/consumer.db", consumer_metadata)
        self.bus = Bus(bootstrap, "bench")
        self.relay = OutboxRelay(self.db, self.tables, self.bus, "bench", poll_seconds=0.5)
        self.received: dict[tuple[str, int], float] = {}
        self.sent: dict[tuple[str, int], float] = {}

        async def on_tick(session, evt: CloudEvent, payload: Tick) -> None:  # type: ignore[no-untyped-def]
            self.received[(payload.run, payload.seq)] = time.perf_counter()

        self.consumer = InboxConsumer(
            self.consumer_db,
            self.consumer_tables,
            self.bus,
            "bench-consumer",
            {Tick.event_type: on_tick},
        )
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.db.create_schema()
        await self.consumer_db.create_schema()
        await self.bus.ensure_topics([TOPIC], 3, 1)
        self.tasks = [
            asyncio.create_task(self.relay.run()),
            asyncio.create_task(self.consumer.run()),
        ]
        await asyncio.wait_for(self.consumer.ready.wait(), 60)
        await self.write("warmup", range(50), per_tx=50)
        await self.wait_for("warmup", 50)

    async def write(self, run: str, seqs: range, per_tx: int) -> None:
        batch: list[int] = []
        for seq in seqs:
            batch.append(seq)
            if len(batch) == per_tx:
                await self._commit(run, batch)
                batch = []
        if batch:
            await self._commit(run, batch)

    async def _commit(self, run: str, seqs: list[int]) -> None:
        async with self.db.transaction() as session:
            for seq in seqs:
                await record(
                    session,
                    self.tables,
                    make_event(
                        Tick(seq=seq, run=run),
                        source="bench",
                        subject=str(seq),
                        gridcode=f"4403060010010{seq % 20:02d}",
                    ),
                )
        now = time.perf_counter()
        for seq in seqs:
            self.sent[(run, seq)] = now

    async def wait_for(self, run: str, count: int, timeout: float = 300) -> float:
        deadline = time.perf_counter() + timeout
        while sum(1 for r, _ in self.received if r == run) < count:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{run}: only {len(self.received)} events arrived")
            await asyncio.sleep(0.01)
        return max(t for (r, _), t in self.received.items() if r == run)

    def latencies_ms(self, run: str) -> list[float]:
        return [
            (self.received[k] - self.sent[k]) * 1000
            for k in self.sent
            if k[0] == run and k in self.received
        ]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.bus.close()
        await self.db.dispose()
        await self.consumer_db.dispose()


async def steady(rate: float, seconds: float, action) -> int:  # type: ignore[no-untyped-def]
    """Call ``action(i)`` at a steady rate (bounded by count and time)."""
    total = int(rate * seconds)
    start = time.perf_counter()
    for i in range(total):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await action(i)
    return total


async def bench_pipeline(bootstrap: str, events: int, rate: float, seconds: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        pipe = Pipeline(Path(tmp), bootstrap)
        await pipe.start()
        try:
            started = time.perf_counter()
            await pipe.write("burst", range(events), per_tx=50)
            written = time.perf_counter()
            done = await pipe.wait_for("burst", events)
            throughput = events / (done - started)

            sent = await steady(
                rate, seconds, lambda i: pipe.write("steady", range(i, i + 1), per_tx=1)
            )
            await pipe.wait_for("steady", sent)
            lat = pipe.latencies_ms("steady")
        finally:
            await pipe.stop()
    return {
        "burst_events": events,
        "write_events_per_s": round(events / (written - started)),
        "end_to_end_events_per_s": round(throughput),
        "steady_rate_per_s": rate,
        "steady_events": sent,
        "latency_ms_p50": round(percentile(lat, 0.50), 1),
        "latency_ms_p99": round(percentile(lat, 0.99), 1),
        "latency_ms_max": round(max(lat), 1),
    }


async def bench_bare_kafka(bootstrap: str, events: int, rate: float, seconds: float) -> dict:
    topic = "bench-bare.v1"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id="bench-bare",
        fetch_max_wait_ms=50,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await producer.start()
    admin_bus = Bus(bootstrap, "bench-admin")
    await admin_bus.ensure_topics([topic], 3, 1)
    await consumer.start()
    sent: dict[int, float] = {}
    received: dict[int, float] = {}

    async def consume() -> None:
        async for message in consumer:
            received[int(message.key)] = time.perf_counter()
            await consumer.commit()

    task = asyncio.create_task(consume())
    try:
        started = time.perf_counter()
        futures = []
        for seq in range(events):
            sent[seq] = time.perf_counter()
            futures.append(await producer.send(topic, b"x" * 600, key=str(seq).encode()))
        await asyncio.gather(*futures)
        while len(received) < events:
            await asyncio.sleep(0.01)
        throughput = events / (max(received.values()) - started)

        async def one(i: int) -> None:
            seq = events + i
            sent[seq] = time.perf_counter()
            await producer.send_and_wait(topic, b"x" * 600, key=str(seq).encode())

        total = await steady(rate, seconds, one)
        while len(received) < events + total:
            await asyncio.sleep(0.01)
        lat = [(received[s] - sent[s]) * 1000 for s in range(events, events + total)]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await consumer.stop()
        await producer.stop()
        await admin_bus.close()
    return {
        "end_to_end_events_per_s": round(throughput),
        "latency_ms_p50": round(percentile(lat, 0.50), 1),
        "latency_ms_p99": round(percentile(lat, 0.99), 1),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--quick", action="store_true", help="1,000 events, 5 s steady")
    args = parser.parse_args()
    if args.quick:
        args.events, args.seconds = 1000, 5.0
    broker = Broker().start()
    try:
        print("outbox pipeline…", file=sys.stderr)
        pipeline = await bench_pipeline(broker.bootstrap, args.events, args.rate, args.seconds)
        print("bare kafka baseline…", file=sys.stderr)
        baseline = await bench_bare_kafka(broker.bootstrap, args.events, args.rate, args.seconds)
    finally:
        broker.stop()
    result = {
        "benchmark": "outbox_pipeline",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": "sqlite",
        "broker": "tansu (embedded)",
        "pipeline": pipeline,
        "baseline_bare_kafka": baseline,
        "pipeline_vs_baseline_throughput": round(
            pipeline["end_to_end_events_per_s"] / baseline["end_to_end_events_per_s"], 3
        ),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
