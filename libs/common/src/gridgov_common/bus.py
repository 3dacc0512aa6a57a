"""Kafka access: one producer per service (acks=all) and topic creation.

No code depends on idempotent producers or transactions: the embedded broker (Tansu) lacks
them. Exactly-once *effect* comes from the outbox (at-least-once publish) plus the inbox.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Mapping

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, OffsetOutOfRangeError, TopicAlreadyExistsError

log = logging.getLogger("gridgov.bus")


class Bus:
    def __init__(self, bootstrap_servers: str, client_id: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def producer(self) -> AIOKafkaProducer:
        """The started producer; (re)connects lazily so a broker outage at start is survivable."""
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.bootstrap_servers,
                    client_id=self.client_id,
                    acks="all",
                    enable_idempotence=False,
                    linger_ms=2,
                    request_timeout_ms=10000,
                )
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def reset(self) -> None:
        """Drop the producer after an error so the next call reconnects from scratch."""
        async with self._lock:
            if self._producer is not None:
                producer, self._producer = self._producer, None
                try:
                    await producer.stop()
                except Exception:  # the broker is already gone; nothing to flush to
                    log.debug("producer stop failed", exc_info=True)

    async def publish(
        self, topic: str, key: str, value: bytes, headers: list[tuple[str, bytes]] | None = None
    ) -> None:
        producer = await self.producer()
        await producer.send_and_wait(topic, value, key=key.encode(), headers=headers)

    async def ensure_topics(
        self, topics: Iterable[str], partitions: int, replication_factor: int
    ) -> None:
        """Create missing topics; an existing topic is left as it is."""
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap_servers, client_id=f"{self.client_id}-admin"
        )
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            missing = [t for t in dict.fromkeys(topics) if t not in existing]
            if missing:
                try:
                    await admin.create_topics(
                        [NewTopic(t, partitions, replication_factor) for t in missing]
                    )
                except TopicAlreadyExistsError:
                    pass  # another replica won the race
        finally:
            await admin.close()

    async def missing(
        self, written: Mapping[TopicPartition, tuple[int, str]], timeout: float = 5.0
    ) -> set[TopicPartition]:
        """Partitions that no longer hold what was written to them: for each, the offset and
        event id of the last record written; a partition that has no record there, or
        another event, lost it (a broker that restarted empty, an unclean leader election).
        Read back record by record: Tansu's end offsets lag behind a batch."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=f"{self.client_id}-audit",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="none",
            request_timeout_ms=int(timeout * 1000),
        )
        await consumer.start()
        lost = set()
        try:
            for tp, (offset, event_id) in written.items():
                consumer.assign([tp])
                consumer.seek(tp, offset)
                try:
                    record = await asyncio.wait_for(consumer.getone(tp), timeout)
                except (OffsetOutOfRangeError, TimeoutError):
                    lost.add(tp)
                    continue
                if record.offset != offset or event_id_of(record.value) != event_id:
                    lost.add(tp)
            return lost
        finally:
            await consumer.stop()

    async def ping(self, timeout: float = 2.0) -> None:
        producer = await self.producer()
        ok = await asyncio.wait_for(producer.client.force_metadata_update(), timeout)
        if not ok:
            raise KafkaError("broker metadata unavailable")

    async def close(self) -> None:
        await self.reset()


def event_id_of(value: bytes | None) -> str | None:
    """The ``id`` of a CloudEvent record; ``None`` if it is not one."""
    try:
        return str(json.loads(value or b"")["id"])
    except (ValueError, KeyError, TypeError):
        return None
