"""Permits, employers, staffing and points through the real API."""

from __future__ import annotations

from datetime import date, timedelta

from gridgov_common.lease import Lease
from gridgov_common.testing import eventually
from gridgov_population import permits
from gridgov_population.access import china_today

from .conftest import (
    GRID_ADMIN,
    OFFICER,
    house_body,
    make_id,
    outbox_bodies,
    outbox_events,
    person_body,
)

EVIDENCE = [{"kind": "employment", "description": "劳动合同", "reference": "HT-2025-001"}]


async def _resident(http, house_id, arrival: date, seq: int, name: str = "张伟") -> str:
    r = await http.post("/v1/persons", json=person_body(id_number=make_id(seq=seq), name=name))
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    r = await http.post(
        "/v1/registrations",
        json={
            "person_id": pid,
            "house_id": house_id,
            "arrival_date": arrival.isoformat(),
            "reason": "work",
        },
    )
    assert r.status_code == 201, r.text
    return pid


async def test_permit_eligibility_issue_and_endorsement_window(pop, city):
    today = china_today()
    async with pop.client(OFFICER) as http:
        house = (await http.post("/v1/houses", json=house_body(city))).json()
        five = await _resident(http, house["id"], permits.add_months(today, -5), 11)
        r = await http.post(
            "/v1/permits",
            json={"person_id": five, "evidence": EVIDENCE, "issuing_authority": "宝安公安分局"},
        )
        assert r.status_code == 422
        assert r.json()["type"] == "urn:gridgov:problem:residence-too-short"
        seven = await _resident(http, house["id"], permits.add_months(today, -7), 13, "李娜")
        r = await http.post(
            "/v1/permits",
            json={"person_id": seven, "evidence": [], "issuing_authority": "宝安公安分局"},
        )
        assert r.status_code == 422
        r = await http.post(
            "/v1/permits",
            json={
                "person_id": seven,
                "evidence": EVIDENCE,
                "issuing_authority": "宝安公安分局",
                "photo_ref": "photos/abc.jpg",
            },
        )
        assert r.status_code == 201, r.text
        permit = r.json()
        assert permit["permit_number"].startswith("440306" + str(today.year))
        assert permit["valid_until"] == permits.add_months(today, 12).isoformat()
        assert permit["status"] == "valid" and permit["name"] == "李娜"
        assert permit["id_number"].startswith("4201**") and permit["residence_address"]
        # A second permit for the same person: refused.
        r = await http.post(
            "/v1/permits",
            json={"person_id": seven, "evidence": EVIDENCE, "issuing_authority": "x"},
        )
        assert r.status_code == 409
        # Endorsement outside the window (11 months early).
        r = await http.post(f"/v1/permits/{permit['id']}/endorsements", json={})
        assert r.status_code == 422
        assert r.json()["type"] == "urn:gridgov:problem:endorsement-outside-window"
        # Unmasked permit read needs a purpose.
        r = await http.get(f"/v1/permits/{permit['id']}", params={"unmask": "true"})
        assert r.status_code == 422


async def test_endorse_in_window_and_late_restore_and_reminders(pop, city):
    today = china_today()
    async with pop.client(OFFICER) as http:
        house = (await http.post("/v1/houses", json=house_body(city))).json()
        pid = await _resident(http, house["id"], permits.add_months(today, -30), 21)
        issued = permits.add_months(today, -11) - timedelta(days=5)
        r = await http.post(
            "/v1/permits",
            json={
                "person_id": pid,
                "evidence": EVIDENCE,
                "issuing_authority": "宝安公安分局",
                "issue_date": issued.isoformat(),
            },
        )
        permit = r.json()
        due = date.fromisoformat(permit["valid_until"])
        # Reminder published once, by the lease holder only.
        a = Lease(pop.ctx.db, pop.ctx.tables, "permit-reminders-test", holder="replica-a")
        b = Lease(pop.ctx.db, pop.ctx.tables, "permit-reminders-test", holder="replica-b")
        assert await permits.scan_if_holder(pop.ctx, a, today) is not None
        assert await permits.scan_if_holder(pop.ctx, b, today) is None
        await permits.scan_if_holder(pop.ctx, a, today)
        reminders = [
            e
            for e in await outbox_events(pop, "permit.expiring")
            if e["data"]["permit_id"] == permit["id"]
        ]
        assert len(reminders) == 1
        assert reminders[0]["data"]["endorsement_due"] == due.isoformat()
        assert reminders[0]["data"]["status"] == "valid"
        r = await http.post(f"/v1/permits/{permit['id']}/endorsements", json={})
        assert r.status_code == 200, r.text
        assert r.json()["valid_until"] == permits.add_months(issued, 24).isoformat()
        # Overdue: suspended by the scanner (once), restored by a late endorsement.
        pid2 = await _resident(http, house["id"], permits.add_months(today, -30), 23, "王芳")
        issued2 = permits.add_months(today, -12) + timedelta(days=3)
        p2 = (
            await http.post(
                "/v1/permits",
                json={
                    "person_id": pid2,
                    "evidence": EVIDENCE,
                    "issuing_authority": "宝安公安分局",
                    "issue_date": issued2.isoformat(),
                },
            )
        ).json()
        later = today + timedelta(days=4)
        await permits.scan(pop.ctx, later)
        await permits.scan(pop.ctx, later)
        got = (await http.get(f"/v1/permits/{p2['id']}")).json()
        assert got["status"] == "suspended"
        events = [
            e["data"]["status"]
            for e in await outbox_events(pop, "permit.expiring")
            if e["data"]["permit_id"] == p2["id"]
        ]
        assert events[-1] == "suspended" and events.count("suspended") == 1
        # Issued 13 months ago and never endorsed: suspended, a late endorsement restores it.
        pid3 = await _resident(http, house["id"], permits.add_months(today, -30), 25, "赵六")
        issued3 = permits.add_months(today, -13)
        p3 = (
            await http.post(
                "/v1/permits",
                json={
                    "person_id": pid3,
                    "evidence": EVIDENCE,
                    "issuing_authority": "宝安公安分局",
                    "issue_date": issued3.isoformat(),
                },
            )
        ).json()
        assert p3["status"] == "suspended"
        r = await http.post(f"/v1/permits/{p3['id']}/endorsements", json={})
        assert r.json()["status"] == "valid"
        assert r.json()["valid_until"] == permits.add_months(issued3, 24).isoformat()
    for body in await outbox_bodies(pop):
        for seq in (21, 23, 25):
            assert make_id(seq=seq)[:17] not in body


async def test_employer_roster_lists_unregistered(pop, city):
    today = china_today()
    async with pop.client(OFFICER) as http:
        house = (await http.post("/v1/houses", json=house_body(city))).json()
        registered = await _resident(http, house["id"], today, 31)
        r = await http.post(
            "/v1/persons", json=person_body(id_number=make_id(seq=33), name="无登记")
        )
        unregistered = r.json()["id"]
        r = await http.post(
            "/v1/employers",
            json={
                "region_code": city.community,
                "name": "海裕电子厂",
                "credit_code": "91440300MA5XXXXX1X",
                "agreement_signed": "2025-01-01",
                "agreement_expires": "2027-01-01",
            },
        )
        assert r.status_code == 201, r.text
        emp = r.json()
        assert emp["agreement_status"] == "signed"
        for pid in (registered, unregistered):
            r = await http.post(
                f"/v1/employers/{emp['id']}/employees",
                json={"person_id": pid, "start_date": "2025-06-01"},
            )
            assert r.status_code == 201, r.text
        roster = (await http.get(f"/v1/employers/{emp['id']}/employees")).json()["items"]
        assert len(roster) == 2
        gaps = (
            await http.get(f"/v1/employers/{emp['id']}/employees", params={"unregistered": "true"})
        ).json()["items"]
        assert [g["person_id"] for g in gaps] == [unregistered]
        assert gaps[0]["masked_name"] == "无*记"


async def test_staffing_from_coordinator_events(launch, grid, city):
    async with launch("population", grid_svc_url=grid.url, residents_per_coordinator=1) as pop:
        async with grid.client(GRID_ADMIN) as http:
            r = await http.post(
                f"/v1/grids/{city.grid_west}/members",
                json={"name": "协管员甲", "role": "coordinator", "valid_from": "2025-01-01"},
            )
            assert r.status_code == 201, r.text
        today = china_today()
        async with pop.client(OFFICER) as http:
            house = (await http.post("/v1/houses", json=house_body(city))).json()
            await _resident(http, house["id"], today, 41)
            await _resident(http, house["id"], today, 43, "李雷")

            async def report():
                r = await http.get("/v1/staffing", params={"region": city.community})
                body = r.json()
                west = [g for g in body["grids"] if g["grid_code"] == city.grid_west]
                # grid.v1 is keyed by grid code: the east grid's creation sits on another
                # partition and may be consumed after the west grid's coordinator.
                east = any(g["grid_code"] == city.grid_east for g in body["grids"])
                return body if east and west and west[0]["coordinators"] == 1 else None

            body = await eventually(report, timeout=30)
        west = next(g for g in body["grids"] if g["grid_code"] == city.grid_west)
        assert west["floating_residents"] == 2 and west["required_coordinators"] == 2
        assert body["understaffed"] == [city.grid_west]
        codes = {g["grid_code"] for g in body["grids"]}
        assert city.grid_east in codes and city.other_grid not in codes


async def test_points_table_application_ranking_recompute(pop, city):
    today = china_today()
    table = {
        "version": "2026.1",
        "items": [
            {
                "code": "education",
                "category": "education",
                "label": "学历",
                "kind": "choice",
                "choices": {"high_school": 10, "bachelor": 50},
            },
            {
                "code": "residence_years",
                "category": "residence",
                "label": "居住年限",
                "kind": "per_unit",
                "points_per_unit": 5,
                "cap": 50,
            },
            {
                "code": "volunteer_hours",
                "category": "contribution",
                "label": "志愿服务",
                "kind": "per_unit",
                "points_per_unit": 0.1,
                "cap": 20,
            },
        ],
    }
    async with pop.client(OFFICER) as http:
        r = await http.post("/v1/points/tables", json=table)
        assert r.status_code == 201, r.text
        r = await http.post("/v1/points/tables", json=table)
        assert r.status_code == 409
        r = await http.put(
            "/v1/points/quotas",
            json={"year": 2026, "town_code": city.street, "purpose": "school_place", "quota": 1},
        )
        assert r.status_code == 200, r.text
        house = (await http.post("/v1/houses", json=house_body(city))).json()
        old = await _resident(http, house["id"], today.replace(year=today.year - 3), 51, "甲")
        new = await _resident(http, house["id"], today, 53, "乙")
        apps = {}
        for pid, facts in (
            (old, {"education": "high_school", "volunteer_hours": 50}),
            (new, {"education": "bachelor"}),
        ):
            r = await http.post(
                "/v1/points/applications",
                json={
                    "person_id": pid,
                    "year": 2026,
                    "town_code": city.street,
                    "purpose": "school_place",
                    "table_version": "2026.1",
                    "facts": facts,
                },
            )
            assert r.status_code == 201, r.text
            apps[pid] = r.json()
        assert apps[old]["score"] == 10 + 15 + 5 and apps[old]["table_version"] == "2026.1"
        assert [ln["code"] for ln in apps[old]["lines"]] == [
            "education",
            "residence_years",
            "volunteer_hours",
        ]
        assert apps[new]["score"] == 50
        r = await http.post(
            "/v1/points/applications",
            json={
                "person_id": new,
                "year": 2026,
                "town_code": city.street,
                "purpose": "medical_insurance",
                "table_version": "2026.1",
                "facts": {"residence_years": 10},
            },
        )
        assert r.status_code == 422
        ranking = (
            await http.get(
                "/v1/points/rankings",
                params={"year": 2026, "town_code": city.street, "purpose": "school_place"},
            )
        ).json()
        assert [e["person_id"] for e in ranking["entries"]] == [new, old]
        assert [e["within_quota"] for e in ranking["entries"]] == [True, False]
        assert ranking["tie_break"][0] == "score_desc"
        r = await http.post(f"/v1/points/applications/{apps[old]['id']}/recompute")
        assert r.json()["unchanged"] is True and r.json()["score"] == apps[old]["score"]
