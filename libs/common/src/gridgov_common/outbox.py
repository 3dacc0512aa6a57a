"""Transactional outbox: an event is stored with the state change that caused it, then relayed.

``record`` writes the event into the caller's transaction, so a rolled-back change publishes
nothing and a committed one can never be lost. :class:`OutboxRelay` publishes unsent rows in
``id`` order (hence in order per key) with ``acks=all``, marks them sent, and backs off while
the broker is down. One relay runs per service at a time (a lease), which keeps that order.

A broker can lose what it acknowledged (the embedded one keeps nothing across a restart; a
Kafka cluster after an unclean leader election). So the relay audits what it wrote: after a
broker outage, and every ``audit_seconds``, it reads back the last record it wrote to each
partition; and a partition whose new offsets start at or below the last one it wrote has
started over. A topic with a partition that lost records gets its rows of the last
``replay_seconds`` sent again; consumers' inboxes drop what they already had.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

from aiokafka import TopicPartition
from prometheus_client import Counter
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from .bus import Bus
from .db import Database, PlatformTables, utcnow
from .events import CloudEvent
from .events.envelope import REGISTRY
from .lease import Lease

log = logging.getLogger("gridgov.outbox")

PUBLISHED = Counter(
    "gridgov_outbox_published_total", "Events published from the outbox", ["service", "topic"]
)
REPLAYED = Counter(
    "gridgov_outbox_replayed_total",
    "Events sent again because the broker no longer held them",
    ["service", "topic"],
)
_PENDING_FLAG = "gridgov_outbox_pending"


async def record(
    session: AsyncSession, tables: PlatformTables, evt: CloudEvent, topic: str | None = None
) -> None:
    """Add ``evt`` to the outbox inside the caller's (still open) transaction."""
    await session.execute(insert(tables.outbox).values(outbox_row(evt, topic)))
    session.info[_PENDING_FLAG] = True


async def record_many(
    session: AsyncSession, tables: PlatformTables, events: Sequence[CloudEvent]
) -> None:
    """Add several events in one statement (in this order) inside the caller's transaction."""
    if not events:
        return
    await session.execute(insert(tables.outbox), [outbox_row(evt) for evt in events])
    session.info[_PENDING_FLAG] = True


def outbox_row(evt: CloudEvent, topic: str | None = None) -> dict[str, Any]:
    if topic is None:
        spec = REGISTRY.get(evt.type)
        if spec is None:
            raise ValueError(f"event type {evt.type} is not registered; pass its topic")
        topic = spec.topic
    return {
        "event_id": evt.id,
        "topic": topic,
        "key": evt.key,
        "body": evt.model_dump_json(exclude_none=True),
        "created_at": utcnow(),
    }


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        tables: PlatformTables,
        bus: Bus,
        service: str,
        *,
        poll_seconds: float = 0.5,
        batch_size: int = 500,
        ensure_topics: Callable[[], Awaitable[None]] | None = None,
        audit_seconds: float = 15.0,
        replay_seconds: float = 3600.0,
    ) -> None:
        self.db = db
        self.tables = tables
        self.bus = bus
        self.service = service
        self.poll_seconds = poll_seconds
        self.batch_size = batch_size
        self.lease = Lease(db, tables, "outbox-relay")
        # Run before publishing after a broker outage: a broker that lost its topics (the
        # embedded one keeps nothing) must get them back with their partitions, not auto-created.
        self.ensure_topics = ensure_topics
        self.broker_unavailable = False  # set while publishing fails; cleared on recovery
        self.audit_seconds = audit_seconds  # 0: audit only after an outage
        self.replay_seconds = replay_seconds
        # Per partition written to: offset and event id of the last record written.
        self._written: dict[TopicPartition, tuple[int, str]] = {}
        self._next_audit = 0.0
        self._wake = asyncio.Event()
        db.on_commit(self._after_commit)

    def _after_commit(self, session: Session) -> None:
        # A commit that recorded events wakes the relay at once instead of at the next poll.
        if session.info.pop(_PENDING_FLAG, False):
            self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        backoff = 0.2
        while True:
            try:
                if await self.lease.ensure():
                    if self.broker_unavailable:
                        if self.ensure_topics is not None:
                            await self.ensure_topics()
                        await self.audit()
                    elif self.audit_seconds and time.monotonic() >= self._next_audit:
                        await self.audit()
                    self.broker_unavailable = False
                    sent = await self.relay_once()
                    backoff = 0.2
                    if sent >= self.batch_size:
                        continue  # more waiting; do not sleep
                await self._sleep(self.poll_seconds)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Broker or database down: keep the rows, retry with capped exponential backoff.
                log.warning("outbox relay failed, retrying in %.1fs: %s", backoff, exc)
                self.broker_unavailable = True
                await self.bus.reset()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def relay_once(self) -> int:
        """Publish one batch of unsent rows in order; returns how many were sent."""
        t = self.tables.outbox
        async with self.db.reader() as session:
            rows = (
                await session.execute(
                    select(t.c.id, t.c.event_id, t.c.topic, t.c.key, t.c.body)
                    .where(t.c.sent_at.is_(None))
                    .order_by(t.c.id)
                    .limit(self.batch_size)
                )
            ).all()
        if not rows:
            return 0
        producer = await self.bus.producer()
        # Send the batch pipelined; the producer keeps per-partition order.
        futures: list[Any] = [
            await producer.send(row.topic, row.body.encode(), key=row.key.encode()) for row in rows
        ]
        written = await asyncio.gather(*futures)
        now = utcnow()
        async with self.db.transaction() as session:
            await session.execute(
                update(t).where(t.c.id.in_([r.id for r in rows])).values(sent_at=now)
            )
        restarted: set[str] = set()
        for row, meta in zip(rows, written, strict=True):
            tp = TopicPartition(meta.topic, meta.partition)
            if tp in self._written and meta.offset <= self._written[tp][0]:
                # The log starts over below what we wrote: the broker came back without it
                # while the producer waited, so no send failed and no outage was seen.
                restarted.add(tp.topic)
            self._written[tp] = (meta.offset, row.event_id)
            PUBLISHED.labels(self.service, row.topic).inc()
        if restarted:
            await self._send_again(restarted)
        return len(rows)

    async def audit(self) -> int:
        """Check that the broker still holds what this relay wrote; mark what it lost for
        sending again. Returns how many rows were marked."""
        self._next_audit = time.monotonic() + self.audit_seconds
        if not self._written:
            return 0
        lost = {tp.topic for tp in await self.bus.missing(self._written)}
        return await self._send_again(lost) if lost else 0

    async def _send_again(self, lost: set[str]) -> int:
        """Mark the last ``replay_seconds`` of rows of topics the broker lost as unsent."""
        since = utcnow() - timedelta(seconds=self.replay_seconds)
        t = self.tables.outbox
        marked = 0
        async with self.db.transaction() as session:
            for topic in sorted(lost):
                result = await session.execute(
                    update(t).where(t.c.topic == topic, t.c.sent_at >= since).values(sent_at=None)
                )
                count = int(result.rowcount or 0)  # type: ignore[attr-defined]
                marked += count
                REPLAYED.labels(self.service, topic).inc(count)
                log.warning("the broker lost events of %s; sending the last %d again", topic, count)
        self._written = {tp: w for tp, w in self._written.items() if tp.topic not in lost}
        self._wake.set()  # send them now, not at the next poll
        return marked

    async def backlog(self) -> int:
        t = self.tables.outbox
        async with self.db.sessions() as session:
            return int(
                (
                    await session.execute(select(func.count()).where(t.c.sent_at.is_(None)))
                ).scalar_one()
            )
