"""notify-svc against a real broker, real databases and real HTTP receivers."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from types import SimpleNamespace

import httpx
from fastapi import FastAPI, Request, Response
from sqlalchemy import func, select, update
from standardwebhooks import Webhook

from gridgov_common.db import utcnow
from gridgov_common.embedded import free_port
from gridgov_common.events.population import SpecialGroupFlagged
from gridgov_common.testing import eventually, serve, token_for
from gridgov_notify.escalation import calendar_of, escalate_due
from gridgov_notify.models import Dispatch, DispatchLog

from .conftest import GRID, Receiver, make_department, new_secret

ADMIN = token_for(roles=["admin"], scopes=["440306"])
FAST = dict(
    webhook_retry_base_seconds=0.05, webhook_retry_max_seconds=0.2, delivery_poll_seconds=0.05
)


def dept_token(dept_id: str) -> str:
    return token_for(
        roles=["department"], scopes=["440306"], subject=f"user-{dept_id}", department_id=dept_id
    )


async def city(http, receivers: dict[str, Receiver]):
    """Three front-line departments for street 440306001, three for street 440306002, parents."""
    await make_department(http, "district-police", "police_station", ["440306"])
    await make_department(http, "district-fire", "fire_brigade", ["440306"])
    await make_department(http, "street-office", "community_committee", ["440306001"])
    await make_department(
        http,
        "police-a",
        "police_station",
        ["440306001"],
        receiver=receivers.get("police-a"),
        parent="district-police",
    )
    await make_department(
        http,
        "fire-a",
        "fire_brigade",
        ["440306001"],
        receiver=receivers.get("fire-a"),
        parent="district-fire",
    )
    await make_department(
        http,
        "committee-a",
        "community_committee",
        ["440306001001"],
        receiver=receivers.get("committee-a"),
        parent="street-office",
    )
    await make_department(
        http,
        "police-b",
        "police_station",
        ["440306002"],
        receiver=receivers.get("police-b"),
        parent="district-police",
    )
    await make_department(
        http,
        "committee-b",
        "community_committee",
        ["440306002001"],
        receiver=receivers.get("committee-b"),
    )


async def dispatches_of(http, **params):
    r = await http.get("/v1/dispatches", params=params)
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def test_departments_crud_and_secrets_never_returned(launch):
    async with launch("notify") as notify, notify.client(ADMIN) as http:
        secret = new_secret()
        d = await make_department(
            http, "p1", "police_station", ["440306001"], receiver=Receiver(secret=secret)
        )
        assert secret not in json.dumps(d)
        assert len(d["webhook"]["secrets"]) == 1
        # rotate: two valid at once, the oldest falls off at the third
        s2, s3 = new_secret(), new_secret()
        for s in (s2, s3):
            r = await http.post("/v1/departments/p1/webhook-secrets", json={"secret": s})
            assert r.status_code == 201 and s not in r.text
        r = await http.get("/v1/departments/p1")
        assert r.status_code == 200
        assert len(r.json()["webhook"]["secrets"]) == 2
        for s in (secret, s2, s3):
            assert s not in r.text
        r = await http.get("/v1/departments")
        assert all(s not in r.text for s in (secret, s2, s3))
        # bad input → problems, not 500s
        r = await http.post(
            "/v1/departments",
            json={"name": "x", "type": "police_station", "jurisdictions": ["abc"]},
        )
        assert r.status_code == 422
        r = await http.post(
            "/v1/departments",
            json={
                "name": "x",
                "type": "police_station",
                "jurisdictions": ["440306"],
                "parent_id": "nope",
            },
        )
        assert r.status_code == 422 and "parent" in r.json()["detail"]
        r = await http.post(
            "/v1/departments",
            json={
                "name": "x",
                "type": "police_station",
                "jurisdictions": ["440306"],
                "webhook": {"url": "http://x/", "secret": "plain"},
            },
        )
        assert r.status_code == 422
        r = await http.post(
            "/v1/departments",
            json={"name": "x", "type": "police_station", "jurisdictions": ["4403"]},
        )
        assert r.status_code == 403  # outside the admin's scope 440306
        r = await http.patch(
            "/v1/departments/p1",
            json={"name": "新安派出所", "jurisdictions": ["440306001", "440306002"]},
        )
        assert r.status_code == 200 and r.json()["version"] > 1
        r = await http.get("/v1/departments", params={"covering": "440306002001001"})
        assert [d["id"] for d in r.json()["items"]] == ["p1"]
        # a department user sees only its own department
        async with notify.client(dept_token("p1")) as own:
            assert (await own.get("/v1/departments/p1")).status_code == 200
        await make_department(http, "p2", "fire_brigade", ["440306001"])
        async with notify.client(dept_token("p1")) as own:
            assert (await own.get("/v1/departments/p2")).status_code == 404


async def test_rules_seeded_editable_and_versioned(launch):
    async with launch("notify") as notify, notify.client(ADMIN) as http:
        r = await http.get("/v1/routing-rules")
        ids = {x["rule_id"] for x in r.json()["items"]}
        assert {
            "hazard-major",
            "hazard-general",
            "checkpoint-missed",
            "house-overcrowded",
            "special-group",
        } <= ids
        rule = next(x for x in r.json()["items"] if x["rule_id"] == "checkpoint-missed")
        body = {
            k: rule[k]
            for k in (
                "name",
                "event_type",
                "match",
                "grid_classes",
                "department_types",
                "ack_sla",
                "feedback_sla",
            )
        }
        body["department_types"] = ["community_committee", "fire_brigade"]
        r = await http.put("/v1/routing-rules/checkpoint-missed", json=body)
        assert r.status_code == 200 and r.json()["version"] == 2
        r = await http.get("/v1/routing-rules/checkpoint-missed/versions")
        assert [v["version"] for v in r.json()["items"]] == [1, 2]
        assert [v["is_current"] for v in r.json()["items"]] == [False, True]
        body["ack_sla"] = "soon"
        r = await http.put("/v1/routing-rules/checkpoint-missed", json=body)
        assert r.status_code == 422 and "SLA" in r.json()["detail"]
        async with notify.client(dept_token("x")) as dep:
            assert (
                await dep.put("/v1/routing-rules/checkpoint-missed", json=body)
            ).status_code == 403


async def test_hazard_reaches_exactly_the_three_departments_by_signed_webhook(launch, publisher):
    receivers = {
        k: Receiver(secret=new_secret())
        for k in ("police-a", "fire-a", "committee-a", "police-b", "committee-b")
    }
    async with contextlib_all([r.serve() for r in receivers.values()]):
        async with launch("notify", **FAST) as notify, notify.client(ADMIN) as http:
            await city(http, receivers)
            await publisher.region(GRID, "key")
            evt = await publisher.hazard(GRID, "major", "hz-1")
            # the same event redelivered twice more: no new case, no new dispatch
            for _ in range(2):
                await publisher.publish(None or _payload(evt), gridcode=GRID, evt=evt)

            async def three_accepted():
                got = {k for k, r in receivers.items() if r.accepted}
                return got if got == {"police-a", "fire-a", "committee-a"} else None

            await eventually(three_accepted, timeout=20)
            await asyncio.sleep(1.0)
            for name in ("police-a", "fire-a", "committee-a"):
                rec = receivers[name]
                assert len(rec.accepted) == 1 and rec.bad_signatures == 0
                body = rec.accepted[0]
                assert body["event"]["id"] == evt.id
                assert body["dispatch"]["department_id"] == name
                assert body["dispatch"]["why"]["rule_id"] == "hazard-major"
            assert (
                receivers["police-a"].accepted[0]["dispatch"]["why"]["matched_prefix"]
                == "440306001"
            )
            assert (
                receivers["committee-a"].accepted[0]["dispatch"]["why"]["matched_prefix"]
                == "440306001001"
            )
            assert not receivers["police-b"].accepted and not receivers["committee-b"].accepted
            items = await dispatches_of(http)
            assert sorted(i["department_id"] for i in items) == [
                "committee-a",
                "fire-a",
                "police-a",
            ]
            assert {i["state"] for i in items} == {"delivered"}
            # an overseer sees dispatches and cases of its own region only
            for scope, expected in (("440306001", 3), ("440306002", 0)):
                async with notify.client(token_for(roles=["viewer"], scopes=[scope])) as v:
                    assert len(await dispatches_of(v)) == expected
                    cases = (await v.get("/v1/cases")).json()["items"]
                    assert len(cases) == min(expected, 1)
                    one = await v.get(f"/v1/dispatches/{items[0]['id']}")
                    assert one.status_code == (200 if expected else 404)
                    history = await v.get(f"/v1/dispatches/{items[0]['id']}/history")
                    assert history.status_code == (200 if expected else 404)
                    case = await v.get(f"/v1/cases/{items[0]['case_id']}")
                    assert case.status_code == (200 if expected else 404)
            r = await http.get("/v1/cases", params={"source_subject": "hz-1"})
            cases = r.json()["items"]
            assert len(cases) == 1 and cases[0]["state"] == "open"
            assert len(cases[0]["not_acknowledged"]) == 3
            # transitions were published: pending and delivered for each, in the outbox
            async with notify.ctx.db.sessions() as s:
                n = await s.scalar(select(func.count()).select_from(DispatchLog))
            assert n == 6


def _payload(evt):
    from gridgov_common.events import parse_payload

    return parse_payload(evt)


class contextlib_all:
    def __init__(self, cms):
        self.cms = cms

    async def __aenter__(self):
        for cm in self.cms:
            await cm.__aenter__()

    async def __aexit__(self, *exc):
        for cm in reversed(self.cms):
            await cm.__aexit__(None, None, None)


async def test_unrouted_event_is_reported(launch, publisher):
    async with launch("notify", **FAST) as notify, notify.client(ADMIN) as http:
        await make_department(http, "police-a", "police_station", ["440306001"])
        # In the admin's district (unrouted events are listed within the caller's scopes),
        # in a street no department covers.
        evt = await publisher.hazard("440306002001001", "major", "hz-far")

        async def listed():
            r = await http.get("/v1/unrouted-events")
            return r.json()["items"]

        items = await eventually(listed, timeout=20)
        assert items[0]["source_event_id"] == evt.id
        assert "covers grid 440306002001001" in items[0]["reason"]
        metrics = (await http.get("/metrics")).text
        assert 'gridgov_notify_unrouted_total{type="gridgov.inspection.hazard.reported"}' in metrics
        async with notify.ctx.db.sessions() as s:
            from gridgov_notify.models import tables

            rows = (await s.execute(select(tables.outbox.c.body))).scalars().all()
        assert any("gridgov.notify.event.unrouted" in b for b in rows)


async def test_rules_by_grid_class_and_special_group(launch, publisher):
    async with launch("notify", **FAST) as notify, notify.client(ADMIN) as http:
        await make_department(http, "committee-a", "community_committee", ["440306001001"])
        await make_department(http, "school", "education", ["440306"])
        await make_department(http, "clinic", "health", ["440306"])
        await publisher.region(GRID, "regular")
        await publisher.publish(
            SpecialGroupFlagged(
                person_id="p1",
                grid_code=GRID,
                group="left_behind_child",
                masked_name="张*",
                age=9,
                flagged_at=utcnow(),
            ),
            gridcode=GRID,
        )

        async def two():
            items = await dispatches_of(http)
            return items if len(items) == 2 else None

        items = await eventually(two, timeout=20)
        assert sorted(i["department_id"] for i in items) == ["committee-a", "school"]
        # a rule limited to "key" grids does not fire in a regular grid
        r = await http.post(
            "/v1/routing-rules",
            json={
                "rule_id": "hazard-key-health",
                "name": "key grids: health too",
                "event_type": "gridgov.inspection.hazard.reported",
                "grid_classes": ["key"],
                "department_types": ["health"],
                "ack_sla": "1h",
                "feedback_sla": "1wd",
            },
        )
        assert r.status_code == 201, r.text
        await publisher.hazard(GRID, "general", "hz-2")
        await eventually(lambda: _count_cases(http, 2), timeout=20)
        items = await dispatches_of(http, department_id="clinic")
        assert items == []
        # the grid becomes "key" (grid.v1 update): now health gets the next one
        await publisher.region(GRID, "key", version=2)
        await asyncio.sleep(1.0)
        await publisher.hazard(GRID, "general", "hz-3")

        async def clinic():
            return await dispatches_of(http, department_id="clinic")

        got = await eventually(clinic, timeout=20)
        assert got[0]["why"]["rule_id"] == "hazard-key-health"


async def _count_cases(http, n):
    r = await http.get("/v1/cases")
    return len(r.json()["items"]) >= n


async def test_500_three_times_then_200_gives_one_accepted_delivery(launch, publisher):
    rec = Receiver(secret=new_secret(), fail_first=3)
    async with rec.serve(), launch("notify", **FAST) as notify, notify.client(ADMIN) as http:
        await make_department(http, "police-a", "police_station", ["440306001"], receiver=rec)
        await publisher.hazard(GRID)
        await eventually(lambda: rec.accepted, timeout=20)
        await asyncio.sleep(0.5)
        assert rec.attempts == 4 and len(rec.accepted) == 1 and rec.bad_signatures == 0
        items = await dispatches_of(http)
        assert items[0]["state"] == "delivered"


async def test_4xx_fails_at_once_and_429_is_retried(launch, publisher):
    gone = Receiver(secret=new_secret(), fail_first=100, fail_status=410)
    busy = Receiver(secret=new_secret(), fail_first=1, fail_status=429)
    async with (
        gone.serve(),
        busy.serve(),
        launch("notify", **FAST) as notify,
        notify.client(ADMIN) as http,
    ):
        await make_department(http, "police-a", "police_station", ["440306001"], receiver=gone)
        await make_department(http, "fire-a", "fire_brigade", ["440306001"], receiver=busy)
        await publisher.hazard(GRID)

        async def states():
            items = {i["department_id"]: i["state"] for i in await dispatches_of(http)}
            return items if items == {"police-a": "failed", "fire-a": "delivered"} else None

        await eventually(states, timeout=20)
        assert gone.attempts == 1 and busy.attempts == 2
        r = await http.get("/v1/departments/police-a/evaluation")
        assert r.json()["failed_deliveries"] == 1


async def test_receiver_down_during_restart_still_gets_delivery(launch, publisher):
    rec = Receiver(secret=new_secret())
    settings = dict(FAST, webhook_retry_base_seconds=0.2, webhook_retry_max_seconds=0.5)
    async with launch("notify", **settings) as notify, notify.client(ADMIN) as http:
        await make_department(http, "police-a", "police_station", ["440306001"], receiver=rec)
        await publisher.hazard(GRID)

        async def attempted():
            async with notify.ctx.db.sessions() as s:
                from gridgov_notify.models import Delivery

                d = await s.scalar(select(Delivery))
                return d is not None and d.attempts >= 1

        await eventually(attempted, timeout=20)
    # notify-svc is down; the receiver comes up; notify-svc restarts on the same database
    async with rec.serve(), launch("notify", **settings) as notify, notify.client(ADMIN) as http:
        await eventually(lambda: rec.accepted, timeout=20)

        async def delivered():
            items = await dispatches_of(http)
            return items[0]["state"] == "delivered"

        await eventually(delivered, timeout=20)
        assert len(rec.accepted) == 1


async def test_ack_feedback_reroute_and_case_summary(launch, publisher):
    async with launch("notify", **FAST) as notify, notify.client(ADMIN) as http:
        await city(http, {})
        await publisher.hazard(GRID, "general", "hz-9")

        async def three():
            items = await dispatches_of(http)
            return {i["department_id"]: i for i in items} if len(items) == 3 else None

        by_dept = await eventually(three, timeout=20)
        police, fire = by_dept["police-a"], by_dept["fire-a"]
        # another department cannot act on police's dispatch
        async with notify.client(dept_token("fire-a")) as f:
            assert (await f.post(f"/v1/dispatches/{police['id']}/ack")).status_code == 404
            r = await f.post(f"/v1/dispatches/{fire['id']}/feedback", json={"result": "rectified"})
            assert r.status_code == 409  # acknowledge first
            r = await f.post(f"/v1/dispatches/{fire['id']}/ack")
            assert r.status_code == 200 and r.json()["state"] == "acknowledged"
            assert r.json()["acknowledged_by"] == "user-fire-a"
            r = await f.post(
                f"/v1/dispatches/{fire['id']}/feedback",
                json={"result": "rectified", "note": "replaced", "photos": ["sha256:abc"]},
            )
            assert r.status_code == 200 and r.json()["feedback_result"] == "rectified"
        r = await http.get(f"/v1/cases/{police['case_id']}")
        case = r.json()
        assert case["state"] == "partially_acknowledged"
        assert [a["department_id"] for a in case["acknowledged"]] == ["fire-a"]
        assert {w["department_id"] for w in case["not_acknowledged"]} == {"police-a", "committee-a"}
        # police: not our responsibility → new dispatch to the district police
        async with notify.client(dept_token("police-a")) as p:
            await p.post(f"/v1/dispatches/{police['id']}/ack")
            r = await p.post(
                f"/v1/dispatches/{police['id']}/feedback", json={"result": "not_our_responsibility"}
            )
            assert r.status_code == 422  # a reason is required
            r = await p.post(
                f"/v1/dispatches/{police['id']}/feedback",
                json={"result": "not_our_responsibility", "note": "fire matter only"},
            )
            assert r.status_code == 200, r.text
            old = r.json()
        assert old["state"] == "closed" and old["forwarded_to"]
        r = await http.get(f"/v1/dispatches/{old['forwarded_to']}")
        new = r.json()
        assert (
            new["department_id"] == "district-police"
            and new["why"]["rerouted_from"] == police["id"]
        )
        assert "fire matter only" in new["why"]["reason"]
        r = await http.get("/v1/departments/police-a/evaluation")
        ev = r.json()
        assert ev["received"] == 1 and ev["reroutes"] == 1 and ev["acknowledged_within_sla"] == 1
        r = await http.get(f"/v1/dispatches/{police['id']}/history")
        assert [h["to_state"] for h in r.json()["items"]] == [
            "pending",
            "acknowledged",
            "feedback_received",
            "closed",
        ]


async def test_escalation_fires_once_with_two_instances(launch, publisher):
    settings = dict(FAST, escalation_poll_seconds=0.05)
    async with (
        launch("notify", **settings) as a,
        launch("notify", **settings) as b,
        a.client(ADMIN) as http,
    ):
        await city(http, {})
        await publisher.hazard(GRID, "major", "hz-esc")

        async def three():
            items = await dispatches_of(http)
            return items if len(items) == 3 else None

        items = await eventually(three, timeout=20)
        committee = next(i for i in items if i["department_id"] == "committee-a")
        # time passes: the committee's acknowledgement SLA runs out
        async with a.ctx.db.transaction() as s:
            await s.execute(
                update(Dispatch)
                .where(Dispatch.id == committee["id"])
                .values(ack_due_at=utcnow() - timedelta(minutes=1))
            )
        # and two more workers race on the same database as well
        cal = calendar_of(a.ctx.settings)
        await asyncio.gather(
            escalate_due(a.ctx, cal), escalate_due(b.ctx, cal), escalate_due(a.ctx, cal)
        )

        async def escalated():
            items = await dispatches_of(http, department_id="street-office")
            return items or None

        parent = await eventually(escalated, timeout=20)
        await asyncio.sleep(1.0)
        parent = await dispatches_of(http, department_id="street-office")
        assert len(parent) == 1 and parent[0]["why"]["escalated_from"] == committee["id"]
        r = await http.get(f"/v1/dispatches/{committee['id']}/history")
        states = [h["to_state"] for h in r.json()["items"]]
        assert states.count("escalated") == 1
        r = await http.get(f"/v1/dispatches/{committee['id']}")
        assert r.json()["state"] == "escalated" and r.json()["forwarded_to"] == parent[0]["id"]
        r = await http.get("/v1/departments/committee-a/evaluation")
        assert r.json()["escalations"] == 1
        # the committee can no longer acknowledge an escalated dispatch
        async with a.client(dept_token("committee-a")) as c:
            assert (await c.post(f"/v1/dispatches/{committee['id']}/ack")).status_code == 409


async def read_sse(client, path, headers=None, want=1, timeout=10.0):
    events = []
    current: dict[str, str] = {}

    async def run():
        async with client.stream("GET", path, headers=headers or {}) as r:
            assert r.status_code == 200
            async for line in r.aiter_lines():
                if line == "":
                    if "data" in current:
                        events.append(dict(current))
                    current.clear()
                    if len(events) >= want:
                        return
                    continue
                key, _, value = line.partition(":")
                current[key] = value.strip()

    await asyncio.wait_for(run(), timeout)
    return events


async def test_sse_stream_resumes_with_last_event_id(launch, publisher):
    async with launch("notify", **FAST) as notify, notify.client(ADMIN) as http:
        await make_department(http, "police-a", "police_station", ["440306001"])
        await publisher.hazard(GRID, "general", "hz-s1")
        await eventually(lambda: _count_cases(http, 1), timeout=20)
        async with notify.client(dept_token("police-a")) as p:
            first = await read_sse(p, "/v1/departments/police-a/stream", want=1)
            assert json.loads(first[0]["data"])["to_state"] == "pending"
            last_id = first[0]["id"]
            # while disconnected: acknowledged, and another hazard arrives
            d = (await dispatches_of(http))[0]
            await p.post(f"/v1/dispatches/{d['id']}/ack")
            await publisher.hazard(GRID, "general", "hz-s2")
            await eventually(lambda: _count_cases(http, 2), timeout=20)
            missed = await read_sse(
                p, "/v1/departments/police-a/stream", headers={"Last-Event-ID": last_id}, want=2
            )
            states = [json.loads(e["data"])["to_state"] for e in missed]
            subjects = [json.loads(e["data"])["source_subject"] for e in missed]
            assert states == ["acknowledged", "pending"] and subjects == ["hz-s1", "hz-s2"]
            assert int(missed[0]["id"]) > int(last_id)
        async with notify.client(dept_token("fire-x")) as other:
            r = await other.get("/v1/departments/police-a/stream")
            assert r.status_code == 404


async def test_rotation_signs_with_both_secrets_and_transitions_reach_the_broker(
    launch, publisher, kafka_broker
):
    from aiokafka import AIOKafkaConsumer

    old, new = new_secret(), new_secret()
    rec = Receiver(secret=old)
    async with rec.serve(), launch("notify", **FAST) as notify, notify.client(ADMIN) as http:
        await make_department(http, "police-a", "police_station", ["440306001"], receiver=rec)
        r = await http.post("/v1/departments/police-a/webhook-secrets", json={"secret": new})
        assert r.status_code == 201
        rec.accepted.clear()
        evt = await publisher.hazard(GRID, "major", "hz-rot")
        got = await eventually(lambda: rec.accepted, timeout=20)
        # the receiver on the old secret verified (above); the new secret verifies too
        assert got[0]["event"]["id"] == evt.id and rec.bad_signatures == 0
        body, headers = rec.raw[-1]
        Webhook(new).verify(body, headers)
        assert len(headers["webhook-signature"].split(" ")) == 2

        consumer = AIOKafkaConsumer(
            "notify.v1",
            bootstrap_servers=kafka_broker.bootstrap,
            auto_offset_reset="earliest",
            group_id="test-follower",
        )
        await consumer.start()
        try:
            seen: list[dict] = []

            async def transitions():
                batch = await consumer.getmany(timeout_ms=500)
                for msgs in batch.values():
                    seen.extend(json.loads(m.value) for m in msgs)
                states = [
                    e["data"]["to_state"]
                    for e in seen
                    if e["type"] == "gridgov.notify.dispatch.state_changed"
                ]
                return states if "delivered" in states else None

            states = await eventually(transitions, timeout=20)
            assert states[:2] == ["pending", "delivered"]
            first = next(e for e in seen if e["type"] == "gridgov.notify.dispatch.state_changed")
            assert first["data"]["source_event_id"] == evt.id
            assert first["data"]["source_subject"] == "hz-rot"
            assert first["gridcode"] == GRID
        finally:
            await consumer.stop()


async def test_signature_header_verifies_with_each_active_secret():
    from gridgov_notify.webhooks import webhook_headers

    a, b = new_secret(), new_secret()
    body = b'{"event":{},"dispatch":{}}'
    import time as _t

    headers = webhook_headers([a, b], "msg_1", int(_t.time()), body)
    for s in (a, b):
        Webhook(s).verify(body, headers)


async def test_two_instances_deliver_each_dispatch_once(launch, publisher):
    rec = Receiver(secret=new_secret())
    async with rec.serve(), launch("notify", **FAST) as a, launch("notify", **FAST) as b:
        async with a.client(ADMIN) as http:
            await make_department(http, "police-a", "police_station", ["440306001"], receiver=rec)
        for i in range(20):
            await publisher.hazard(GRID, "general", f"hz-{i}")
        await eventually(lambda: len(rec.accepted) >= 20, timeout=30)
        await asyncio.sleep(1.0)
        ids = [x["id"] for x in rec.accepted]
        assert len(ids) == 20 and len(set(ids)) == 20
        assert b.ctx.state["delivery_worker"] is not a.ctx.state["delivery_worker"]


async def test_feedback_not_in_sla_escalates_too(launch, publisher):
    async with launch("notify", **FAST) as notify, notify.client(ADMIN) as http:
        await city(http, {})
        await publisher.hazard(GRID, "general", "hz-fb")

        async def three():
            items = await dispatches_of(http)
            return items if len(items) == 3 else None

        items = await eventually(three, timeout=20)
        fire = next(i for i in items if i["department_id"] == "fire-a")
        async with notify.client(dept_token("fire-a")) as f:
            assert (await f.post(f"/v1/dispatches/{fire['id']}/ack")).status_code == 200
        async with notify.ctx.db.transaction() as s:
            await s.execute(
                update(Dispatch)
                .where(Dispatch.id == fire["id"])
                .values(feedback_due_at=utcnow() - timedelta(seconds=1))
            )
        n = await escalate_due(notify.ctx, calendar_of(notify.ctx.settings))
        assert n == 1
        assert await escalate_due(notify.ctx, calendar_of(notify.ctx.settings)) == 0
        parent = await dispatches_of(http, department_id="district-fire")
        assert parent[0]["why"]["escalated_from"] == fire["id"]
        assert "fed back" in parent[0]["why"]["reason"]


async def test_acknowledged_from_inside_its_webhook_still_shows_delivered(launch, publisher):
    """A department's system that acknowledges from its webhook handler, before answering
    200, always beats the delivery worker to the dispatch: it must still say when it was
    delivered (the reliability suite's load run found these with no ``delivered_at``)."""
    notify_url: list[str] = []
    acks: list[int] = []
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> Response:
        dispatch_id = (await request.json())["dispatch"]["id"]
        async with httpx.AsyncClient(base_url=notify_url[0], timeout=10) as c:
            r = await c.post(
                f"/v1/dispatches/{dispatch_id}/ack",
                headers={"Authorization": f"Bearer {dept_token('committee-a')}"},
            )
        acks.append(r.status_code)
        return Response(status_code=200)

    port = free_port()
    receiver = SimpleNamespace(url=f"http://127.0.0.1:{port}/hook", secret=new_secret())
    async with (
        serve(app, port=port),
        launch("notify", **FAST) as notify,
        notify.client(ADMIN) as http,
    ):
        notify_url.append(notify.url)
        await make_department(
            http, "committee-a", "community_committee", ["440306001001"], receiver=receiver
        )
        await publisher.region(GRID, "key")
        await publisher.hazard(GRID, "general", "hz-auto-ack")

        async def recorded():
            items = await dispatches_of(http)
            return items[0] if items and items[0]["delivered_at"] else None

        dispatch = await eventually(recorded, timeout=20)
        assert acks == [200]
        assert dispatch["state"] == "acknowledged" and dispatch["acknowledged_at"]
