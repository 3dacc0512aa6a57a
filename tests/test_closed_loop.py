"""DOMAIN.md's loop across all four services: collect, transmit, use, feed back, verify.

Everything here goes through the public APIs and the real broker; the departments are real
HTTP servers verifying Standard Webhooks signatures.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import update

from gridgov_common.demo.photos import unique_jpeg
from gridgov_common.testing import eventually
from gridgov_grid.fixtures import box
from gridgov_inspection.models import Checkpoint
from gridgov_population.citizen_id import parse_citizen_id

from .conftest import ADMIN, INSPECTOR, Platform, department_token

FIRST_STREET = {"police-xinan", "fire-baoan", "committee-haiyu"}


def jpeg() -> bytes:
    return unique_jpeg(3000)


async def register_site(p: Platform, grid_code: str) -> dict[str, Any]:
    lon, lat = p.city.point_in(grid_code)
    async with p.inspection.client(ADMIN) as http:
        venue = await http.post(
            "/v1/venues",
            json={
                "name": "老王饭店",
                "venue_type": "restaurant",
                "address": "海裕路1号",
                "location": [lon, lat],
                "floor_area_m2": 80,
                "operator_name": "王老板",
                "contact_phone": "13800000000",
                "licence_no": "91440300MA5X",
            },
        )
        assert venue.status_code == 201, venue.text
        checkpoint = await http.post(
            f"/v1/venues/{venue.json()['id']}/checkpoints",
            json={"name": "后厨", "tag_uid": os.urandom(7).hex().upper(), "cycle_days": 30},
        )
        assert checkpoint.status_code == 201, checkpoint.text
        items = (await http.get("/v1/templates/restaurant")).json()["items"]
    return {
        "venue": venue.json(),
        "checkpoint": checkpoint.json(),
        "point": (lon, lat),
        "items": [i["code"] for i in items],
    }


async def inspect(p: Platform, site: dict[str, Any], fail: set[str], key: str | None = None) -> Any:
    body = {
        "checkpoint_id": site["checkpoint"]["id"],
        "tag_uid": site["checkpoint"]["tag_uid"],
        "scanned_at": datetime.now(UTC).isoformat(),
        "position": list(site["point"]),
        "accuracy_m": 8,
        "answers": [
            {
                "item_code": code,
                "result": "fail" if code in fail else "pass",
                "note": "通道堆放杂物" if code in fail else None,
            }
            for code in site["items"]
        ],
    }
    async with p.inspection.client(INSPECTOR) as http:
        return await http.post(
            "/v1/inspections",
            data={"inspection": json.dumps(body)},
            files=[("photos", ("scene.jpg", jpeg(), "image/jpeg"))],
            headers={"Idempotency-Key": key} if key else None,
        )


async def hazard(p: Platform, hazard_id: str) -> dict[str, Any]:
    async with p.inspection.client(ADMIN) as http:
        return (await http.get(f"/v1/hazards/{hazard_id}")).json()


async def test_hazard_reaches_exactly_its_departments_and_closes_after_verified_fix(platform):
    p = platform
    # Major hazards must be acknowledged within a minute (the shortest SLA a rule can state).
    async with p.notify.client(ADMIN) as http:
        rules = (await http.get("/v1/routing-rules")).json()["items"]
        (rule,) = [r for r in rules if r["rule_id"] == "hazard-major"]
        fields = ("name", "event_type", "match", "grid_classes", "department_types")
        r = await http.put(
            "/v1/routing-rules/hazard-major",
            json={k: rule[k] for k in fields} | {"ack_sla": "1m", "feedback_sla": "1wd"},
        )
        assert r.status_code == 200, r.text
    site = await register_site(p, p.city.grid_west)
    assert site["venue"]["grid_code"] == p.city.grid_west

    # Collect: the inspector fails "exits clear"; a hazard opens.
    r = await inspect(p, site, fail={"exits_clear"})
    assert r.status_code == 201, r.text
    async with p.inspection.client(ADMIN) as http:
        hazards = (
            await http.get("/v1/hazards", params={"checkpoint_id": site["checkpoint"]["id"]})
        ).json()["items"]
    assert len(hazards) == 1
    hazard_id = hazards[0]["id"]

    # Transmit: exactly the police station, fire brigade and committee covering the grid.
    async def three_delivered():
        got = {name for name, rec in p.receivers.items() if rec.accepted}
        return got == FIRST_STREET

    await eventually(three_delivered, timeout=30)
    for name in FIRST_STREET:
        (delivery,) = p.receivers[name].accepted
        assert p.receivers[name].bad_signatures == 0
        assert delivery["event"]["type"] == "gridgov.inspection.hazard.reported"
        assert delivery["event"]["subject"] == hazard_id
    assert not p.receivers["police-xixiang"].accepted
    assert not p.receivers["committee-gushu"].accepted
    await eventually(lambda: _state_is(p, hazard_id, "dispatched"), timeout=20)

    # Use: two departments acknowledge; the hazard shows it.
    dispatches = {
        d["dispatch"]["department_id"]: d["dispatch"]["id"]
        for name in FIRST_STREET
        for d in p.receivers[name].accepted
    }
    for dept in ("police-xinan", "fire-baoan"):
        async with p.notify.client(department_token(dept)) as http:
            r = await http.post(f"/v1/dispatches/{dispatches[dept]}/ack")
            assert r.status_code == 200, r.text
    await eventually(lambda: _state_is(p, hazard_id, "acknowledged"), timeout=20)
    async with p.notify.client(ADMIN) as http:
        (case,) = (await http.get("/v1/cases", params={"source_subject": hazard_id})).json()[
            "items"
        ]
    assert [d for d in case["not_acknowledged"]] and len(case["not_acknowledged"]) == 1

    # Feed back: the fire brigade reports the fix.
    async with p.notify.client(department_token("fire-baoan")) as http:
        r = await http.post(
            f"/v1/dispatches/{dispatches['fire-baoan']}/feedback",
            json={"result": "rectified", "note": "通道已清理"},
        )
        assert r.status_code == 200, r.text
    await eventually(lambda: _state_is(p, hazard_id, "rectification_reported"), timeout=20)

    # Verify: the inspector's re-inspection passes, and only then is the hazard closed.
    r = await inspect(p, site, fail=set())
    assert r.status_code == 201, r.text
    closed = await hazard(p, hazard_id)
    assert closed["state"] == "closed"
    steps = [h["to_state"] for h in closed["history"] if h["kind"] == "state"]
    assert steps == ["open", "dispatched", "acknowledged", "rectification_reported", "closed"]
    # the second acknowledgement changed no state but is a step of the hazard's history too
    acks = [h for h in closed["history"] if "acknowledged the dispatch" in h["reason"]]
    assert len(acks) == 2 and [h["kind"] for h in acks] == ["state", "dispatch"]

    # Evaluate: both sides count it.
    period = {
        "since": f"{date.today().isoformat()}T00:00:00+00:00",
        "until": datetime.now(UTC).isoformat(),
    }
    async with p.inspection.client(ADMIN) as http:
        evaluation = (await http.get("/v1/evaluation/inspectors", params=period)).json()
    (mine,) = [e for e in evaluation["items"] if e["inspector"] == "inspector-li"]
    assert mine["hazards_found"] == 1
    async with p.notify.client(ADMIN) as http:
        r = await http.get("/v1/departments/fire-baoan/evaluation")
        assert r.status_code == 200, r.text
    fire = r.json()
    assert fire["received"] == 1 and fire["acknowledged"] == 1

    # Escalate: the committee never acknowledged. Once its minute is up, its dispatch is
    # escalated to its parent, the street office, which receives the hazard in turn.
    async def escalated():
        return p.receivers["office-xinan"].accepted

    (up,) = await eventually(escalated, timeout=120)
    assert up["event"]["subject"] == hazard_id
    assert up["dispatch"]["why"]["escalated_from"] == dispatches["committee-haiyu"]
    async with p.notify.client(ADMIN) as http:
        late = (await http.get(f"/v1/dispatches/{dispatches['committee-haiyu']}")).json()
        history = (await http.get(f"/v1/dispatches/{late['id']}/history")).json()["items"]
        committee = (await http.get("/v1/departments/committee-haiyu/evaluation")).json()
        (case,) = (await http.get("/v1/cases", params={"source_subject": hazard_id})).json()[
            "items"
        ]
    assert late["state"] == "escalated" and late["forwarded_to"] == up["dispatch"]["id"]
    assert late["escalation_note"] == "not acknowledged within 1m"
    assert [h["to_state"] for h in history] == ["pending", "delivered", "escalated"]
    assert committee["received"] == 1 and committee["acknowledged"] == 0
    assert committee["escalations"] == 1
    assert {d["department_id"] for d in case["dispatches"]} == FIRST_STREET | {"office-xinan"}

    # The escalation left the hazard's state alone and is a step of its history.
    async def escalation_in_history():
        history = (await hazard(p, hazard_id))["history"]
        return [h for h in history if h["kind"] == "dispatch" and "escalated" in h["reason"]]

    (step,) = await eventually(escalation_in_history, timeout=20)
    assert step["from_state"] == step["to_state"] == "closed"
    assert "not acknowledged within 1m" in step["reason"]
    history = (await hazard(p, hazard_id))["history"]
    assert [h["to_state"] for h in history if h["kind"] == "state"] == steps


async def _state_is(p: Platform, hazard_id: str, state: str) -> bool:
    return (await hazard(p, hazard_id))["state"] == state


async def test_the_same_upload_sent_three_times_creates_one_inspection(platform):
    p = platform
    site = await register_site(p, p.city.grid_east)
    body_key = "device-7-upload-42"
    body = {
        "checkpoint_id": site["checkpoint"]["id"],
        "tag_uid": site["checkpoint"]["tag_uid"],
        "scanned_at": datetime.now(UTC).isoformat(),
        "position": list(site["point"]),
        "accuracy_m": 5,
        "answers": [{"item_code": c, "result": "pass"} for c in site["items"]],
    }
    photo = jpeg()
    responses = []
    async with p.inspection.client(INSPECTOR) as http:
        for _ in range(3):
            responses.append(
                await http.post(
                    "/v1/inspections",
                    data={"inspection": json.dumps(body)},
                    files=[("photos", ("scene.jpg", photo, "image/jpeg"))],
                    headers={"Idempotency-Key": body_key},
                )
            )
    assert [r.status_code for r in responses] == [201, 201, 201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert [r.headers.get("idempotent-replayed") for r in responses[1:]] == ["true", "true"]


async def test_overcrowded_dormitory_notifies_police_fire_and_committee_and_clears(platform):
    p = platform
    officer = ADMIN
    lon, lat = p.city.point_in(p.city.grid_east)
    async with p.population.client(officer) as http:
        dorm = await http.post(
            "/v1/houses",
            json={
                "community_code": p.city.community,
                "address": "海裕工业区宿舍 2 栋",
                "lon": lon,
                "lat": lat,
                "owner_name": "李四",
                "owner_id_number": _id("440306", "19700505", 222),
                "owner_phone": "13900001111",
                "floor_area_m2": 9.0,
                "floor": 1,
                "layout": "集体宿舍",
                "use": "collective_dormitory",
                "rooms": [],
            },
        )
        assert dorm.status_code == 201, dorm.text
        registrations = []
        for seq in range(4):  # 9 m² / 4 = 2.25 m² each, under the 3 m² minimum
            person = await http.post(
                "/v1/persons",
                json={
                    "region_code": p.city.street,
                    "name": f"工人{'甲乙丙丁'[seq]}",
                    "id_number": _id("420102", "19900101", 101 + 2 * seq),
                    "sex": "male",
                    "birth_date": "1990-01-01",
                    "phone": f"1381234{seq:04d}",
                    "household_region_code": "420102",
                    "household_address": "湖北省武汉市",
                },
            )
            assert person.status_code == 201, person.text
            reg = await http.post(
                "/v1/registrations",
                json={
                    "person_id": person.json()["id"],
                    "house_id": dorm.json()["id"],
                    "arrival_date": date.today().isoformat(),
                    "reason": "work",
                },
            )
            assert reg.status_code == 201, reg.text
            registrations.append(reg.json()["id"])

    async def notified():
        return {
            name
            for name, rec in p.receivers.items()
            if any(
                a["event"]["type"] == "gridgov.population.house.overcrowded" for a in rec.accepted
            )
        }

    assert await eventually(lambda: _equals(notified(), FIRST_STREET), timeout=30)

    async with p.population.client(officer) as http:
        r = await http.post(
            f"/v1/registrations/{registrations[0]}/departure",
            json={"departure_date": date.today().isoformat()},
        )
        assert r.status_code == 200, r.text
        assert (await http.get(f"/v1/houses/{dorm.json()['id']}")).json()["overcrowded_units"] == []


async def _equals(coro, expected):
    value = await coro
    return value if value == expected else None


def _id(region: str, birth: str, seq: int) -> str:
    first17 = f"{region}{birth}{seq:03d}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    check = "10X98765432"[sum(int(d) * w for d, w in zip(first17, weights, strict=True)) % 11]
    return parse_citizen_id(first17 + check).number


async def test_split_grid_new_venues_resolve_and_routing_follows(platform):
    p = platform
    async with p.grid.client(ADMIN) as http:
        r = await http.post(
            f"/v1/regions/{p.city.grid_east}/split",
            json={
                "parts": [
                    {"name": "海裕第二网格南", "boundary": box(113.91, 22.55, 113.92, 22.56)},
                    {"name": "海裕第二网格北", "boundary": box(113.91, 22.56, 113.92, 22.57)},
                ]
            },
        )
        assert r.status_code == 201, r.text
        south, north = (g["code"] for g in r.json())
        old = (await http.get(f"/v1/regions/{p.city.grid_east}")).json()
    assert old["status"] == "retired" and old["replaced_by"] == [south, north]

    lon, lat = 113.915, 22.565  # in the north part
    async with p.inspection.client(ADMIN) as http:
        venue = await http.post(
            "/v1/venues",
            json={
                "name": "小网吧",
                "venue_type": "internet_cafe",
                "address": "北区 3 号",
                "location": [lon, lat],
                "floor_area_m2": 60,
                "operator_name": "赵",
                "contact_phone": "13700000000",
                "licence_no": "914403",
            },
        )
    assert venue.status_code == 201, venue.text
    assert venue.json()["grid_code"] == north

    # Routing follows the new grid: a hazard there reaches the first street's departments.
    site = {"venue": venue.json(), "point": (lon, lat)}
    async with p.inspection.client(ADMIN) as http:
        checkpoint = await http.post(
            f"/v1/venues/{venue.json()['id']}/checkpoints",
            json={"name": "大厅", "tag_uid": os.urandom(7).hex().upper(), "cycle_days": 30},
        )
        items = (await http.get("/v1/templates/internet_cafe")).json()["items"]
    site |= {"checkpoint": checkpoint.json(), "items": [i["code"] for i in items]}
    r = await inspect(p, site, fail={site["items"][0]})
    assert r.status_code == 201, r.text

    async def reached():
        return {
            name
            for name, rec in p.receivers.items()
            if any(a["event"].get("gridcode") == north for a in rec.accepted)
        }

    assert await eventually(lambda: _equals(reached(), FIRST_STREET), timeout=30)


async def test_a_cycle_passing_uninspected_turns_yellow_and_tells_the_committee_once(platform):
    p = platform
    site = await register_site(p, p.city.grid_west)
    checkpoint_id = site["checkpoint"]["id"]
    # The cycle runs out with no inspection (test-only time travel, as inspection-svc's own
    # tests do: a cycle is at least a day).
    async with p.inspection.ctx.db.transaction() as s:
        await s.execute(
            update(Checkpoint)
            .where(Checkpoint.id == checkpoint_id)
            .values(due_at=datetime.now(UTC) - timedelta(hours=1))
        )
    async with p.inspection.client(ADMIN) as http:
        assert (await http.post("/v1/status/sweep")).json()["missed"] == 1
        assert (await http.post("/v1/status/sweep")).json()["missed"] == 0  # once per miss
        assert (await http.get(f"/v1/checkpoints/{checkpoint_id}")).json()["colour"] == "yellow"

    def told(name: str) -> list[dict[str, Any]]:
        return [
            a
            for a in p.receivers[name].accepted
            if a["event"]["type"] == "gridgov.inspection.checkpoint.missed"
        ]

    (notice,) = await eventually(lambda: told("committee-haiyu"), timeout=30)
    assert notice["event"]["data"]["checkpoint_id"] == checkpoint_id
    assert notice["event"]["data"]["venue"]["name"] == "老王饭店"
    assert [name for name in p.receivers if name != "committee-haiyu" and told(name)] == []

    # The late inspection turns it green, and nothing is missed again.
    r = await inspect(p, site, fail=set())
    assert r.status_code == 201, r.text
    assert r.json()["on_time"] is False
    async with p.inspection.client(ADMIN) as http:
        assert (await http.get(f"/v1/checkpoints/{checkpoint_id}")).json()["colour"] == "green"
        assert (await http.post("/v1/status/sweep")).json()["missed"] == 0
    async with p.notify.client(ADMIN) as http:
        cases = (await http.get("/v1/cases", params={"source_subject": checkpoint_id})).json()
    (case,) = cases["items"]
    assert [d["department_id"] for d in case["dispatches"]] == ["committee-haiyu"]
