"""Inbox consumer runner: exactly-once effect on top of at-least-once delivery.

A handler is registered per event type. For each message the handler's writes and the inbox
row (keyed by event id) commit in one transaction, so a redelivered event has no second
effect. A message that keeps failing goes to ``<topic>.dlq.<group>`` with its error and the
consumer moves on; one that cannot even be parsed (not JSON, not a CloudEvent, an unknown
type, a payload that does not match its type) goes there at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Protocol, runtime_checkable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import IllegalStateError
from prometheus_client import Counter
from pydantic import ValidationError
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from .bus import Bus, event_id_of
from .db import Database, PlatformTables, utcnow
from .events import CloudEvent, EventPayload, dlq_topic
from .events.envelope import REGISTRY

log = logging.getLogger("gridgov.inbox")

Handler = Callable[[AsyncSession, CloudEvent, Any], Awaitable[None]]


@runtime_checkable
class BatchHandler(Protocol):
    """A handler that can also take a run of consecutive events in one call (set-based writes).

    It is called as a plain :data:`Handler` for a single event and when events are retried
    one by one, so both paths must have the same effect.
    """

    async def __call__(self, session: AsyncSession, evt: CloudEvent, payload: Any) -> None: ...

    async def handle_batch(
        self, session: AsyncSession, events: list[tuple[CloudEvent, Any]]
    ) -> None: ...


WorkItem = tuple[ConsumerRecord, CloudEvent, Any, Handler]


def _runs(
    work: list[WorkItem], seen: set[str], outcomes: list[tuple[str, str]]
) -> list[list[WorkItem]]:
    """Split the batch, in order, into single events and runs of consecutive events of one
    batch handler; events already in the inbox (or twice in the batch) are left out."""
    runs: list[list[WorkItem]] = []
    for item in work:
        evt, handler = item[1], item[3]
        if evt.id in seen:
            outcomes.append((evt.type, "duplicate"))
            continue
        seen.add(evt.id)
        if runs and isinstance(handler, BatchHandler) and runs[-1][0][3] is handler:
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


CONSUMED = Counter(
    "gridgov_events_consumed_total", "Events handled by the inbox", ["service", "type", "outcome"]
)


class PoisonMessage(Exception):
    """A message that can never be handled (unparseable); straight to the DLQ."""


class InboxConsumer:
    def __init__(
        self,
        db: Database,
        tables: PlatformTables,
        bus: Bus,
        group: str,
        handlers: dict[str, Handler],
        *,
        max_attempts: int = 5,
        retry_base_seconds: float = 0.2,
        audit_seconds: float = 15.0,
    ) -> None:
        unknown = [t for t in handlers if t not in REGISTRY]
        if unknown:
            raise ValueError(f"handlers for unregistered event types: {unknown}")
        self.db = db
        self.tables = tables
        self.bus = bus
        self.group = group
        self.handlers = handlers
        self.max_attempts = max_attempts
        self.retry_base_seconds = retry_base_seconds
        self.topics = sorted({REGISTRY[t].topic for t in handlers})
        self.ready = asyncio.Event()
        # Small batches: one batch is one write transaction, and on SQLite every other writer
        # (the relay, delivery workers, API writes) waits for it.
        self.batch_size = 50
        # Per partition: offset and event id of the last record handled; read back one
        # audit_seconds (0: never) later to notice a broker that came back without it.
        self.audit_seconds = audit_seconds
        self._handled: dict[TopicPartition, tuple[int, str]] = {}

    async def run(self) -> None:
        backoff = 0.5
        while True:
            consumer = AIOKafkaConsumer(
                *self.topics,
                bootstrap_servers=self.bus.bootstrap_servers,
                group_id=self.group,
                client_id=f"{self.group}-consumer",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                isolation_level="read_uncommitted",
                # Don't let the broker sit on a fetch for long: dispatch latency matters more
                # than fetch efficiency at these volumes.
                fetch_max_wait_ms=50,
            )
            try:
                await consumer.start()
                backoff = 0.5
                await self.consume(consumer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("consumer %s failed, restarting in %.1fs: %s", self.group, backoff, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                try:
                    await consumer.stop()
                except Exception:
                    log.debug("consumer stop failed", exc_info=True)

    async def consume(self, consumer: AIOKafkaConsumer) -> None:
        """Handle what a started consumer fetches, batch by batch, until cancelled."""
        audit: asyncio.Task[set[TopicPartition]] | None = None
        next_audit = time.monotonic() + self.audit_seconds
        # What was read last as of the previous audit: if the broker restarted since, it is
        # gone, even though the records read after the restart are where they should be.
        anchors: dict[TopicPartition, tuple[int, str]] = {}
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=self.batch_size)
                self.ready.set()
                offsets = {}
                for tp, messages in batches.items():
                    await self.process_batch(messages)
                    last = messages[-1]
                    offsets[TopicPartition(tp.topic, tp.partition)] = last.offset + 1
                    if self.audit_seconds and (event_id := event_id_of(last.value)):
                        self._handled[tp] = (last.offset, event_id)
                if offsets:
                    # Commit per batch: a crash replays at most the uncommitted part of one
                    # batch, and the inbox makes that replay harmless.
                    await consumer.commit(offsets)
                if audit is not None and audit.done():
                    # An audit that could not reach the broker finds nothing: the next one will.
                    lost = set() if audit.exception() else audit.result()
                    audit = None
                    for tp in lost:
                        self._read_again(consumer, tp, 0, "no longer holds what was read there")
                if audit is None and self.audit_seconds and time.monotonic() >= next_audit:
                    if anchors:
                        # In the background: a lost record shows as a read timing out.
                        audit = asyncio.create_task(self.bus.missing(anchors))
                    anchors = dict(self._handled)
                    next_audit = time.monotonic() + self.audit_seconds
                await self._reread_shortened(consumer, fetched=batches.keys())
        finally:
            if audit is not None:
                audit.cancel()

    async def _reread_shortened(
        self, consumer: AIOKafkaConsumer, fetched: Collection[TopicPartition]
    ) -> None:
        """Read again a partition that now ends before our position: from our last commit
        if that is below the end, else from the start.

        Kafka answers a fetch past a partition's end with OFFSET_OUT_OF_RANGE and the consumer
        starts over by its reset policy. The embedded broker answers with nothing: after it
        restarts empty, a consumer would wait for the new log to grow past its old position
        and silently skip everything written below it. If the new log has already grown past
        it, the audit (``audit_seconds``) notices that the record last read is not there.
        A partition that just returned records (``fetched``) is not past its end."""
        for tp in consumer.assignment() - set(fetched):
            end = consumer.highwater(tp)
            if end is None:
                continue  # not fetched yet
            try:
                position = await consumer.position(tp)
            except IllegalStateError:
                continue  # revoked by a rebalance since
            if position <= end:
                continue
            # Kafka's end can also lag for a moment after a leader change: then our own
            # commit is still below it and a cheap place to read again from.
            committed = await consumer.committed(tp)
            again = committed if committed is not None and committed <= end else 0
            self._read_again(consumer, tp, again, f"ends at {end}, before position {position}")

    def _read_again(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int, why: str
    ) -> None:
        """Seek back; the inbox drops what is read twice. Below the log start, the reset
        policy applies."""
        log.warning(
            "%s partition %d %s: reading it again from offset %d",
            tp.topic,
            tp.partition,
            why,
            offset,
        )
        self._handled.pop(tp, None)
        with contextlib.suppress(IllegalStateError):  # revoked by a rebalance since
            consumer.seek(tp, offset)

    async def process_batch(self, messages: list[ConsumerRecord]) -> None:
        """Handle a batch in one transaction (a savepoint per event, or per run of consecutive
        events whose handler takes batches); a failing event or run is rolled back alone and
        its events are then retried one by one, so it cannot hold up or undo the others."""
        inbox = self.tables.inbox
        work: list[tuple[ConsumerRecord, CloudEvent, Any, Handler]] = []
        for message in messages:
            try:
                evt, payload = self._parse(message.value)
            except PoisonMessage as exc:
                await self._dead_letter(message, f"unparseable event: {exc}", attempts=0)
                continue
            handler = self.handlers.get(evt.type)
            if handler is not None:
                work.append((message, evt, payload, handler))
        if not work:
            return
        retry_alone: list[ConsumerRecord] = []
        outcomes: list[tuple[str, str]] = []
        try:
            async with self.db.transaction() as session:
                ids = [evt.id for _, evt, _, _ in work]
                seen = set(
                    (
                        await session.scalars(
                            select(inbox.c.event_id).where(inbox.c.event_id.in_(ids))
                        )
                    ).all()
                )
                handled: list[tuple[ConsumerRecord, CloudEvent]] = []
                for run in _runs(work, seen, outcomes):
                    handler = run[0][3]
                    try:
                        async with session.begin_nested():
                            if len(run) > 1 and isinstance(handler, BatchHandler):
                                await handler.handle_batch(session, [(e, p) for _, e, p, _ in run])
                            else:
                                await handler(session, run[0][1], run[0][2])
                    except Exception:
                        retry_alone.extend(message for message, _, _, _ in run)
                        continue
                    handled.extend((message, evt) for message, evt, _, _ in run)
                if handled:
                    now = utcnow()
                    await session.execute(
                        insert(inbox),
                        [
                            {
                                "event_id": evt.id,
                                "topic": message.topic,
                                "type": evt.type,
                                "processed_at": now,
                            }
                            for message, evt in handled
                        ],
                    )
                outcomes.extend((evt.type, "handled") for _, evt in handled)
        except Exception as exc:
            # The batch transaction itself failed (e.g. the database): go one by one.
            log.warning("batch of %d failed, handling one by one: %s", len(work), exc)
            retry_alone = [message for message, _, _, _ in work]
            outcomes = []
        for event_type, outcome in outcomes:
            CONSUMED.labels(self.group, event_type, outcome).inc()
        for message in retry_alone:
            await self.process(message)

    async def process(self, message: ConsumerRecord) -> None:
        try:
            evt, payload = self._parse(message.value)
        except PoisonMessage as exc:
            await self._dead_letter(message, f"unparseable event: {exc}", attempts=0)
            return
        handler = self.handlers.get(evt.type)
        if handler is None:
            return  # not an event this service cares about
        error = ""
        for attempt in range(1, self.max_attempts + 1):
            try:
                outcome = await self._handle_once(evt, payload, handler, message.topic)
                CONSUMED.labels(self.group, evt.type, outcome).inc()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "handler for %s failed (attempt %d/%d): %s",
                    evt.type,
                    attempt,
                    self.max_attempts,
                    error,
                    extra={"event_id": evt.id},
                )
                if attempt < self.max_attempts:
                    await asyncio.sleep(self.retry_base_seconds * 2 ** (attempt - 1))
        CONSUMED.labels(self.group, evt.type, "dead_lettered").inc()
        await self._dead_letter(message, error, attempts=self.max_attempts, event_id=evt.id)

    def _parse(self, value: bytes | None) -> tuple[CloudEvent, EventPayload | None]:
        if value is None:
            raise PoisonMessage("empty message")
        try:
            evt = CloudEvent.model_validate_json(value)
        except ValidationError as exc:
            raise PoisonMessage(_short(exc)) from exc
        spec = REGISTRY.get(evt.type)
        if spec is None:
            # Not a type this build knows (a typo, or a producer ahead of us): kept in the
            # DLQ to be seen and replayed, not silently skipped.
            raise PoisonMessage(f"unknown event type {evt.type!r}")
        if evt.type not in self.handlers:
            return evt, None  # a known type this service does not consume
        try:
            return evt, spec.payload.model_validate(evt.data)
        except ValidationError as exc:
            raise PoisonMessage(f"{evt.type} payload invalid: {_short(exc)}") from exc

    async def _handle_once(
        self, evt: CloudEvent, payload: Any, handler: Handler, topic: str
    ) -> str:
        inbox = self.tables.inbox
        async with self.db.transaction() as session:
            seen = await session.scalar(select(inbox.c.event_id).where(inbox.c.event_id == evt.id))
            if seen is not None:
                return "duplicate"
            await handler(session, evt, payload)
            await session.execute(
                insert(inbox).values(
                    event_id=evt.id, topic=topic, type=evt.type, processed_at=utcnow()
                )
            )
        return "handled"

    async def _dead_letter(
        self, message: ConsumerRecord, error: str, *, attempts: int, event_id: str | None = None
    ) -> None:
        topic = dlq_topic(message.topic, self.group)
        headers = [
            ("gridgov-error", error[:2000].encode()),
            ("gridgov-attempts", str(attempts).encode()),
            ("gridgov-source-topic", message.topic.encode()),
            ("gridgov-source-partition", str(message.partition).encode()),
            ("gridgov-source-offset", str(message.offset).encode()),
        ]
        if event_id:
            headers.append(("gridgov-event-id", event_id.encode()))
        key = message.key.decode(errors="replace") if message.key else (event_id or "")
        log.error("event dead-lettered to %s: %s", topic, error, extra={"event_id": event_id})
        # If this publish fails the exception restarts the consumer without committing, so the
        # message is retried rather than lost.
        await self.bus.publish(topic, key, message.value or b"", headers=headers)


def _short(exc: ValidationError) -> str:
    return json.dumps(exc.errors(include_url=False, include_context=False, include_input=False))[
        :1000
    ]
