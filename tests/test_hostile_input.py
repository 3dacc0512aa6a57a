"""Hostile input against the running platform: every answer is a clear 4xx problem, never a
crash, and malformed events go to the dead-letter topic while the consumers keep consuming.

(Hostile photos are in services/inspection-svc/tests/test_inspections.py, next to the upload's
other refusals.)
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import select

from gridgov_common.events import dlq_topic, make_event
from gridgov_common.events.grid import RegionCreated
from gridgov_common.events.inspection import CheckpointMissed, VenueRef
from gridgov_common.events.notify import DispatchStateChanged
from gridgov_common.events.population import HouseOvercrowded
from gridgov_common.testing import RunningService, eventually

from .conftest import ADMIN, Platform

P = "urn:gridgov:problem:"
MB = 1024 * 1024
# One JSON write endpoint per service.
WRITES = {
    "grid": "/v1/regions",
    "inspection": "/v1/venues",
    "population": "/v1/houses",
    "notify": "/v1/departments",
}


def assert_problem(r: httpx.Response, status: int, slug: str, *words: str) -> None:
    assert r.status_code == status, (r.request.method, r.request.url, r.status_code, r.text[:300])
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"] == P + slug and body["status"] == status, body
    for word in words:
        assert word in body["detail"], body["detail"]


async def streamed(total: int) -> AsyncIterator[bytes]:
    """A chunked body (no Content-Length) of ``total`` bytes, produced as it is sent."""
    yield b'{"name": "'
    for _ in range(total // MB):
        yield b"x" * MB
    yield b'"}'


async def test_hostile_bodies_are_answered_with_clear_4xx_problems(platform: Platform) -> None:
    huge = b'{"name": "' + b"x" * (20 * MB) + b'"}'
    deep = b"[" * 10_000 + b"]" * 10_000
    for service, path in WRITES.items():
        svc: RunningService = getattr(platform, service)
        async with svc.client(ADMIN) as http:
            r = await http.post(path, content=huge, headers={"content-type": "application/json"})
            assert_problem(r, 413, "payload-too-large", f"{8 * MB} bytes", "split")
            r = await http.post(
                path, content=streamed(20 * MB), headers={"content-type": "application/json"}
            )
            assert_problem(r, 413, "payload-too-large", f"{8 * MB} bytes")

            r = await http.post(path, content=deep, headers={"content-type": "application/json"})
            assert_problem(r, 400, "malformed-body", "nested too deeply")
            r = await http.post(
                path, content=b'{"name": "\xff\xfe"}', headers={"content-type": "application/json"}
            )
            assert_problem(r, 400, "malformed-body", "UTF-8")
            r = await http.post(
                path, content=b'{"name": ', headers={"content-type": "application/json"}
            )
            assert_problem(r, 422, "validation-error", "not valid JSON")

            for media_type in ("text/plain", "application/xml", "image/jpeg"):
                r = await http.post(path, content=b"name=x", headers={"content-type": media_type})
                assert_problem(r, 415, "unsupported-media-type", media_type, "application/json")

            # NUL: PostgreSQL cannot store it in text; refused alike on every database.
            r = await http.post(
                path, content=b'{"name": "a\\u0000b"}', headers={"content-type": "application/json"}
            )
            assert_problem(r, 422, "nul-character", "remove it")
            r = await http.get(f"{path}/a%00b")
            assert_problem(r, 422, "nul-character")
            r = await http.get(path, params={"cursor": "a\x00b"})
            assert_problem(r, 422, "nul-character")
            # An escaped backslash before "u0000" is plain text, not a NUL.
            r = await http.post(path, json={"name": "a\\u0000b"})
            assert r.status_code == 422 and r.json()["type"] == P + "validation-error", r.text

            # A path that is no route says where the API is; still serving after all that.
            assert_problem(await http.get("/v1/../../etc/passwd"), 404, "not-found", "/docs")
            assert (await http.get("/healthz")).status_code == 200


# Classic SQL injection and path traversal strings, in path segments, queries and bodies.
HOSTILE = [
    "' OR '1'='1",
    "1; DROP TABLE regions; --",
    "440306' UNION SELECT event_id FROM inbox --",
    "440306' OR '1'='1",
    "../../etc/passwd",
    "..\\..\\windows\\win.ini",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "$(cat /etc/passwd)",
    "x" * 5000,
]
# Paths with one id each, and list filters matched against the database.
BY_ID = {
    "grid": ["/v1/regions/{}", "/v1/grids/{}/members", "/v1/regions/{}/coverage"],
    "inspection": ["/v1/venues/{}", "/v1/photos/{}", "/v1/templates/{}", "/v1/hazards/{}"],
    "population": ["/v1/persons/{}", "/v1/houses/{}", "/v1/points/tables/{}"],
    "notify": ["/v1/departments/{}", "/v1/dispatches/{}", "/v1/known-regions/{}", "/v1/cases/{}"],
}
FILTERS = {
    "grid": ("/v1/regions", "under"),
    "inspection": ("/v1/hazards", "region"),
    "population": ("/v1/houses", "region"),
    "notify": ("/v1/departments", "covering"),
}


async def test_injection_and_traversal_strings_find_nothing_and_break_nothing(
    platform: Platform,
) -> None:
    for service, paths in BY_ID.items():
        svc: RunningService = getattr(platform, service)
        async with svc.client(ADMIN) as http:
            for value in HOSTILE:
                for template in paths:
                    # Percent-encoded whole, so "../" stays inside the one path segment.
                    r = await http.get(template.format(quote(value, safe="")))
                    assert r.status_code in (404, 422), (template, value, r.status_code, r.text)
                    assert r.headers["content-type"] == "application/problem+json"
                path, param = FILTERS[service]
                r = await http.get(path, params={param: value})
                # Refused (malformed, or a region outside the caller's scopes), or matched
                # literally: nothing has that name.
                assert r.status_code in (403, 422) or r.json()["items"] == [], (value, r.text)

    # A hostile name in a body is stored as the text it is, and nothing else changes.
    async with platform.notify.client(ADMIN) as http:
        before = (await http.get("/v1/departments")).json()["items"]
        name = "Robert'); DROP TABLE departments; -- ../../etc/passwd"
        r = await http.post(
            "/v1/departments",
            json={
                "id": "dept-hostile",
                "name": name,
                "type": "other",
                "jurisdictions": ["440306"],
                "webhook": {"url": "http://127.0.0.1:9/hook", "secret": "whsec_" + "A" * 32},
            },
        )
        assert r.status_code == 201, r.text
        assert (await http.get("/v1/departments/dept-hostile")).json()["name"] == name
        after = (await http.get("/v1/departments")).json()["items"]
        assert len(after) == len(before) + 1


# --- malformed CloudEvents on every consumed topic --------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def valid_events() -> dict[str, Any]:
    """One valid event per consumed topic, of a type its consumers handle."""
    return {
        "grid.v1": make_event(
            RegionCreated(
                code="440399",
                level="district",
                name="Hostile-test district",
                parent_code=None,
                ancestors=[],
                status="active",
                version=1,
            ),
            source="test",
            subject="440399",
        ),
        "notify.v1": make_event(
            DispatchStateChanged(
                dispatch_id="dsp-hostile",
                case_id="case-hostile",
                source_event_id="evt-hostile",
                source_event_type="gridgov.population.house.overcrowded",
                source_subject=None,
                grid_code=None,
                department_id="police-xinan",
                department_name="police-xinan",
                department_type="police_station",
                from_state=None,
                to_state="delivered",
                at=_now(),
            ),
            source="test",
            subject="dsp-hostile",
        ),
        "inspection.v1": make_event(
            CheckpointMissed(
                checkpoint_id="cp-hostile",
                venue=VenueRef(
                    venue_id="v-hostile",
                    name="Hostile venue",
                    venue_type="shop",
                    address="1 Test Road",
                    location=(113.9, 22.5),
                ),
                grid_code="440399001001001",
                due_at=_now(),
                cycle_days=30,
            ),
            source="test",
            subject="cp-hostile",
            gridcode="440399001001001",
        ),
        "population.v1": make_event(
            HouseOvercrowded(
                house_id="h-hostile",
                house_code="H-1",
                grid_code="440399001001001",
                address="1 Test Road",
                use="residential",
                floor_area_m2=20.0,
                occupants=9,
                area_per_occupant_m2=2.2,
                minimum_m2=5.0,
                detected_at=_now(),
            ),
            source="test",
            subject="h-hostile",
            gridcode="440399001001001",
        ),
    }


def malformed(topic: str, valid: Any) -> list[bytes]:
    """Not JSON; a CloudEvent without its required attributes; nested beyond any parser's
    depth; an unknown type; a known type whose payload does not match it."""
    envelope = json.loads(valid.model_dump_json())
    return [
        b"\x00\xffnot json at all",
        json.dumps({"specversion": "1.0", "type": valid.type, "data": {}}).encode(),
        b'{"specversion": "1.0", "data": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
        json.dumps({**envelope, "id": f"unknown-{topic}", "type": valid.type + "x"}).encode(),
        json.dumps({**envelope, "id": f"invalid-{topic}", "data": {"code": 42}}).encode(),
    ]


CONSUMERS = {  # topic -> the services consuming it
    "grid.v1": ["inspection", "population", "notify"],
    "notify.v1": ["inspection"],
    "inspection.v1": ["notify"],
    "population.v1": ["notify"],
}


async def test_malformed_events_go_to_the_dlq_and_the_next_valid_event_is_consumed(
    platform: Platform, kafka_broker
) -> None:
    valid = valid_events()
    bad = {topic: malformed(topic, valid[topic]) for topic in CONSUMERS}
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    await producer.start()
    try:
        for topic in CONSUMERS:
            for value in bad[topic]:
                await producer.send_and_wait(topic, value, key=b"hostile")
            await producer.send_and_wait(topic, valid[topic].model_dump_json().encode(), key=b"ok")
    finally:
        await producer.stop()

    for topic, services in CONSUMERS.items():
        for service in services:
            svc: RunningService = getattr(platform, service)
            # The valid event after the bad ones was handled (it is in the consumer's inbox).
            await eventually(lambda svc=svc, topic=topic: consumed(svc, valid[topic].id), 30)
    # Every bad one is in each consumer's dead-letter topic, with its error.
    dlqs = {
        dlq_topic(topic, getattr(platform, service).ctx.consumer.group): topic
        for topic, services in CONSUMERS.items()
        for service in services
    }
    dead = await read_all(kafka_broker.bootstrap, list(dlqs), each=5)
    for dlq, topic in dlqs.items():
        assert sorted(m.value for m in dead[dlq]) == sorted(bad[topic]), dlq
        errors = [dict(m.headers)["gridgov-error"].decode() for m in dead[dlq]]
        assert all(e.startswith("unparseable event") for e in errors), errors
        assert any("unknown event type" in e for e in errors), errors


async def consumed(svc: RunningService, event_id: str) -> bool:
    inbox = svc.ctx.tables.inbox
    async with svc.ctx.db.sessions() as session:
        row = await session.scalar(select(inbox.c.event_id).where(inbox.c.event_id == event_id))
    return row is not None


async def read_all(bootstrap: str, topics: list[str], each: int) -> dict[str, list[Any]]:
    """Read ``topics`` from the start (no consumer group to join) until each has ``each``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    found: dict[str, list[Any]] = {t: [] for t in topics}
    try:
        consumer.assign([TopicPartition(t, 0) for t in topics])  # one partition in tests
        await consumer.seek_to_beginning()

        async def all_there() -> bool:
            batch = await consumer.getmany(timeout_ms=200)
            for tp, messages in batch.items():
                found[tp.topic].extend(messages)
            return all(len(found[t]) >= each for t in topics)

        await eventually(all_there, timeout=20)
    finally:
        await consumer.stop()
    return found
