"""The shared mechanisms against a real broker, a real database and a real HTTP server."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import func, select

from gridgov_common.events import TOPICS, dlq_topic, make_event
from gridgov_common.testing import RunningService, eventually, token_for

from .conftest import TEST_TOPIC, Note, NoteRecorded, ReceivedNote

TOKEN = token_for(roles=["admin"], scopes=["440306"])


async def received(svc: RunningService) -> list[tuple[str, str]]:
    async with svc.ctx.db.sessions() as session:
        rows = (await session.execute(select(ReceivedNote.key, ReceivedNote.text))).all()
    return [(r.key, r.text) for r in rows]


async def test_committed_event_is_delivered_and_rolled_back_one_is_not(svc: RunningService):
    async with svc.client(TOKEN) as http:
        refused = await http.post(
            "/v1/notes", json={"id": "n0", "text": "rolled back", "fail_after_recording": True}
        )
        assert refused.status_code == 409
        assert (await http.post("/v1/notes", json={"id": "n1", "text": "hello"})).status_code == 201

    assert await eventually(lambda: received(svc)) == [("k", "hello")]
    async with svc.ctx.db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Note)) == 1


async def test_redelivered_event_has_no_second_effect(svc: RunningService, broker):
    evt = make_event(
        NoteRecorded(note_id="x", text="once"), source="test", subject="x", gridcode="g1"
    )
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    try:
        for _ in range(3):  # the broker redelivers / a producer retried
            await producer.send_and_wait(TEST_TOPIC, evt.model_dump_json().encode(), key=b"g1")
        later = make_event(
            NoteRecorded(note_id="y", text="after"), source="test", subject="y", gridcode="g1"
        )
        await producer.send_and_wait(TEST_TOPIC, later.model_dump_json().encode(), key=b"g1")
    finally:
        await producer.stop()
    rows = await eventually(lambda: _len_at_least(received(svc), 2))
    assert rows == [("g1", "once"), ("g1", "after")]
    async with svc.ctx.db.sessions() as session:
        inbox = svc.ctx.tables.inbox
        assert await session.scalar(select(func.count()).select_from(inbox)) == 2


async def _len_at_least(coro, n):
    rows = await coro
    return rows if len(rows) >= n else None


async def test_poison_event_goes_to_dlq_with_its_error_and_later_events_flow(
    svc: RunningService, broker
):
    async with svc.client(TOKEN) as http:
        for i, text in enumerate(["before", "poison", "after"]):
            assert (await http.post("/v1/notes", json={"id": f"p{i}", "text": text})).is_success
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    await producer.send_and_wait(TEST_TOPIC, b"{not json", key=b"k")
    await producer.stop()
    async with svc.client(TOKEN) as http:
        assert (await http.post("/v1/notes", json={"id": "p3", "text": "last"})).is_success

    rows = await eventually(lambda: _len_at_least(received(svc), 3), timeout=30)
    assert [t for _, t in rows] == ["before", "after", "last"]

    consumer = AIOKafkaConsumer(
        dlq_topic(TEST_TOPIC, "commontest"),
        bootstrap_servers=broker.bootstrap,
        auto_offset_reset="earliest",
        group_id="dlq-reader",
    )
    await consumer.start()
    try:
        dead = []

        async def two_dead():
            batch = await consumer.getmany(timeout_ms=500)
            dead.extend(m for msgs in batch.values() for m in msgs)
            return len(dead) >= 2

        await eventually(two_dead, timeout=20)
    finally:
        await consumer.stop()
    by_error = {dict(m.headers)["gridgov-error"].decode(): m for m in dead}
    handler_failure = by_error.pop("RuntimeError: this note can never be handled")
    assert json.loads(handler_failure.value)["data"]["text"] == "poison"
    assert dict(handler_failure.headers)["gridgov-attempts"] == b"2"
    (unparseable,) = by_error
    assert unparseable.startswith("unparseable event")


async def test_writes_succeed_while_broker_is_down_and_outbox_drains_in_order(
    svc: RunningService, broker
):
    async with svc.client(TOKEN) as http:
        assert (await http.post("/v1/notes", json={"id": "w0", "text": "up"})).is_success
        await eventually(lambda: received(svc))
        broker.stop()
        for i in range(20):
            key = f"grid{i % 2}"
            r = await http.post("/v1/notes", json={"id": f"d{i}", "key": key, "text": str(i)})
            assert r.status_code == 201, r.text
        await eventually(lambda: svc.ctx.relay.broker_unavailable, timeout=60)
        broker.start()  # same port; the embedded broker keeps nothing, so it comes back empty

    outbox = svc.ctx.tables.outbox

    async def drained() -> bool:
        async with svc.ctx.db.sessions() as session:
            return not await session.scalar(
                select(func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None))
            )

    await eventually(drained, timeout=60)
    # What reached the (new) broker: all 20 writes, in order per key, and the first write
    # again, which the old broker held when it stopped.
    consumer = AIOKafkaConsumer(
        TEST_TOPIC,
        bootstrap_servers=broker.bootstrap,
        auto_offset_reset="earliest",
        group_id="order-reader",
    )
    await consumer.start()
    seen: list[tuple[str, int]] = []
    replayed: list[str] = []
    try:

        async def all_seen():
            batch = await consumer.getmany(timeout_ms=500)
            for msgs in batch.values():
                for m in msgs:
                    data = json.loads(m.value)
                    if data["data"]["text"] == "up":  # lost with the old broker, sent again
                        replayed.append(data["id"])
                        continue
                    seen.append((data["gridcode"], int(data["data"]["text"])))
            return len(seen) >= 20 and replayed

        await eventually(all_seen, timeout=30)
    finally:
        await consumer.stop()
    for key in ("grid0", "grid1"):
        values = [v for k, v in seen if k == key]
        assert values == sorted(values) and len(values) == 10


async def _topic_texts(bootstrap: str) -> list[str]:
    """Every note text the broker holds on the test topic, read from the start."""
    consumer = AIOKafkaConsumer(
        TEST_TOPIC, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    texts: list[str] = []
    try:
        while batch := await consumer.getmany(timeout_ms=1000):
            texts += [json.loads(m.value)["data"]["text"] for ms in batch.values() for m in ms]
    finally:
        await consumer.stop()
    return texts


async def test_events_a_restarted_broker_lost_are_sent_again_and_take_effect_once(
    svc: RunningService, broker
):
    """The broker restarts empty between two writes, with nothing written while it is down
    (the relay sees no error): the relay's audit notices and sends the lost events again."""
    svc.ctx.relay.audit_seconds = 0.5
    async with svc.client(TOKEN) as http:
        for i in range(5):
            assert (await http.post("/v1/notes", json={"id": f"b{i}", "text": f"t{i}"})).is_success
        await eventually(lambda: _len_at_least(received(svc), 5))
        broker.stop()
        broker.start()  # same port, empty

        async def held_again() -> bool:
            return sorted(await _topic_texts(broker.bootstrap)) == [f"t{i}" for i in range(5)]

        await eventually(held_again, timeout=60)
        assert (await http.post("/v1/notes", json={"id": "b5", "text": "t5"})).is_success
        rows = await eventually(lambda: _len_at_least(received(svc), 6), timeout=60)
    # Sent twice, in effect once: the inbox dropped the second copies.
    assert sorted(text for _, text in rows) == [f"t{i}" for i in range(6)]
    assert sorted(await _topic_texts(broker.bootstrap)) == [f"t{i}" for i in range(6)]


async def test_the_embedded_broker_starts_and_restarts_with_every_topic_provisioned(broker):
    """Before any client reaches it, so none has a topic auto-created with Tansu's own
    partition count (a consumer holding the old layout would miss the extra partition)."""
    for _ in range(2):
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap)
        await consumer.start()
        try:
            await consumer.topics()  # every topic the broker has, creating none
            for topic in (*TOPICS, TEST_TOPIC):
                assert consumer.partitions_for_topic(topic) == {0}, topic  # TEST_PARTITIONS
        finally:
            await consumer.stop()
        broker.stop()
        broker.start()  # same port, empty


async def test_writes_flowing_through_a_broker_restart_each_take_effect_once(
    svc: RunningService, broker
):
    """Writes keep coming while the broker stops, stays down and comes back empty: every
    one reaches the consumer, once, on every key (a restarted broker that auto-created the
    topic with another partition count used to strand one key's events)."""
    svc.ctx.relay.audit_seconds = 1.0
    texts = [str(i) for i in range(60)]
    async with svc.client(TOKEN) as http:

        async def write(text: str) -> None:
            note = {"id": f"r{text}", "key": f"grid{int(text) % 4}", "text": text}
            r = await http.post("/v1/notes", json=note)
            assert r.status_code == 201, r.text
            await asyncio.sleep(0.05)

        for text in texts[:20]:
            await write(text)
        broker.stop()
        for text in texts[20:40]:
            await write(text)
        await asyncio.sleep(2)
        broker.start()  # same port, empty
        for text in texts[40:]:
            await write(text)
        rows = await eventually(lambda: _len_at_least(received(svc), 60), timeout=60)
    assert sorted(text for _, text in rows) == sorted(texts)


async def test_tokens_expired_forged_missing_or_out_of_scope_are_refused(svc: RunningService):
    expired = token_for(roles=["admin"], ttl=timedelta(seconds=-120))
    forged = token_for(roles=["admin"])[:-4] + "AAAA"
    from pydantic import SecretStr

    from gridgov_common.auth import issue_token
    from gridgov_common.settings import ServiceSettings

    other_key = issue_token(
        ServiceSettings(jwt_signing_key=SecretStr("x" * 40)),
        subject="m",
        roles=["admin"],
        scopes=["*"],
    )
    out_of_scope = token_for(roles=["admin"], scopes=["440307"])
    body = {"id": "a1", "text": "t"}
    async with svc.client() as http:
        r = await http.post("/v1/notes", json=body)
        assert r.status_code == 401
        assert r.headers["content-type"] == "application/problem+json"
        for token in (expired, forged, other_key):
            r = await http.post(
                "/v1/notes", json=body, headers={"Authorization": f"Bearer {token}"}
            )
            assert r.status_code == 401, r.text
        assert (
            "expired"
            in (
                await http.post(
                    "/v1/notes", json=body, headers={"Authorization": f"Bearer {expired}"}
                )
            ).json()["detail"]
        )
        r = await http.post(
            "/v1/notes", json=body, headers={"Authorization": f"Bearer {out_of_scope}"}
        )
        assert r.status_code == 403
        assert r.json()["type"] == "urn:gridgov:problem:out-of-scope"


async def test_validation_errors_are_problem_json_with_field_paths(svc: RunningService):
    async with svc.client(TOKEN) as http:
        r = await http.post("/v1/notes", json={"id": "", "text": 5})
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    fields = {e["field"] for e in r.json()["errors"]}
    assert fields == {"body.id", "body.text"}
    assert "Traceback" not in r.text


async def test_idempotency_key_replays_first_response_and_rejects_other_body(svc: RunningService):
    async with svc.client(TOKEN) as http:
        headers = {"Idempotency-Key": "device-42-upload-7"}
        first = await http.post("/v1/notes", json={"id": "i1", "text": "t"}, headers=headers)
        again = await http.post("/v1/notes", json={"id": "i1", "text": "t"}, headers=headers)
        other = await http.post("/v1/notes", json={"id": "i2", "text": "t"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert other.status_code == 422
    assert other.json()["type"] == "urn:gridgov:problem:idempotency-key-reused"
    async with svc.ctx.db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Note)) == 1


async def test_health_readiness_metrics_and_security_headers(svc: RunningService, broker):
    async with svc.client() as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.headers["x-content-type-options"] == "nosniff"
        assert ready.headers["x-request-id"]
        metrics = await http.get("/metrics")
        assert "gridgov_http_requests_total" in metrics.text
        broker.stop()
        down = await http.get("/readyz")
        assert down.status_code == 503
        assert down.json()["checks"]["broker"].startswith("unavailable")
