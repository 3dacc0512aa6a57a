"""Houses and residence registrations against a real grid-svc."""

from __future__ import annotations

import asyncio
import json
from datetime import date, timedelta

from sqlalchemy import func, select

from gridgov_common.testing import free_port, token_for
from gridgov_population.models import CodeCounter, House

from .conftest import (
    OFFICER,
    OTHER_STREET,
    house_body,
    make_id,
    outbox_bodies,
    outbox_events,
    person_body,
)

TODAY = date.today()


async def test_house_code_grid_and_rooms(pop, city):
    async with pop.client(OFFICER) as http:
        r = await http.post("/v1/houses", json=house_body(city))
        assert r.status_code == 201, r.text
        h1 = r.json()
        r = await http.post("/v1/houses", json=house_body(city, city.grid_east, address="2 栋"))
        h2 = r.json()
    assert h1["house_code"] == city.community + "000001"
    assert h2["house_code"] == city.community + "000002"
    assert h1["grid_code"] == city.grid_west and h2["grid_code"] == city.grid_east
    assert [r["number"] for r in h1["rooms"]] == ["101", "102"]
    assert h1["owner_id_number"].startswith("4403**")
    assert h1["owner_phone"] == "139****1111"


async def test_house_codes_never_reused(pop, city):
    async with pop.client(OFFICER) as http:
        await http.post("/v1/houses", json=house_body(city))
    # Even if a row vanished, the counter moves on.
    async with pop.ctx.db.transaction() as session:
        counter = await session.get(CodeCounter, f"house:{city.community}")
        assert counter.last == 1
    async with pop.client(OFFICER) as http:
        r = await http.post("/v1/houses", json=house_body(city))
        assert r.json()["house_code"].endswith("000002")
        # Concurrent allocations stay unique and gap-free.
        many = await asyncio.gather(
            *(http.post("/v1/houses", json=house_body(city)) for _ in range(8))
        )
    codes = sorted(m.json()["house_code"] for m in many)
    assert codes == [f"{city.community}{n:06d}" for n in range(3, 11)]


async def test_house_location_checks(pop, city):
    async with pop.client(OFFICER) as http:
        r = await http.post("/v1/houses", json=house_body(city, city.other_grid))
        assert r.status_code == 422
        assert r.json()["type"] == "urn:gridgov:problem:location-outside-community"
        r = await http.post("/v1/houses", json=house_body(city, lon=100.0, lat=30.0))
        assert r.status_code == 422
        assert r.json()["type"] == "urn:gridgov:problem:outside-grid"
        r = await http.post(
            "/v1/houses", json=house_body(city, rooms=[{"number": "1", "area_m2": 500}])
        )
        assert r.status_code == 422
    async with pop.client(OTHER_STREET) as http:
        r = await http.post("/v1/houses", json=house_body(city))
        assert r.status_code == 403


async def test_grid_svc_outage_is_503_and_writes_nothing(launch, city):
    async with launch("population", grid_svc_url=f"http://127.0.0.1:{free_port()}") as pop:
        async with pop.client(OFFICER) as http:
            r = await http.post("/v1/houses", json=house_body(city))
        assert r.status_code == 503
        assert r.json()["type"] == "urn:gridgov:problem:grid-svc-unavailable"
        async with pop.ctx.db.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(House)) == 0
            assert await session.scalar(select(func.count()).select_from(CodeCounter)) == 0


async def _person(http, seq=123, **kw):
    r = await http.post("/v1/persons", json=person_body(id_number=make_id(seq=seq), **kw))
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def test_registration_periods_and_handover(pop, city):
    async with pop.client(OFFICER) as http:
        west = (await http.post("/v1/houses", json=house_body(city))).json()
        east = (await http.post("/v1/houses", json=house_body(city, city.grid_east))).json()
        pid = await _person(http)
        arrival = (TODAY - timedelta(days=100)).isoformat()
        r = await http.post(
            "/v1/registrations",
            json={
                "person_id": pid,
                "house_id": west["id"],
                "arrival_date": arrival,
                "reason": "work",
                "room_number": "101",
            },
        )
        assert r.status_code == 201, r.text
        first = r.json()
        assert first["classification"] == "inflow" and first["grid_code"] == city.grid_west
        # Second active registration in the same house: refused.
        r = await http.post(
            "/v1/registrations",
            json={
                "person_id": pid,
                "house_id": west["id"],
                "arrival_date": arrival,
                "reason": "work",
            },
        )
        assert r.status_code == 409
        assert r.json()["type"] == "urn:gridgov:problem:already-registered"
        # A new arrival elsewhere closes the old period and hands over to the new grid.
        moved = (TODAY - timedelta(days=10)).isoformat()
        r = await http.post(
            "/v1/registrations",
            json={
                "person_id": pid,
                "house_id": east["id"],
                "arrival_date": moved,
                "reason": "work",
            },
        )
        assert r.status_code == 201, r.text
        second = r.json()
        assert second["closed_registration_id"] == first["id"]
        hist = (await http.get(f"/v1/persons/{pid}/registrations")).json()["items"]
        assert [(h["active"], h["departure_date"]) for h in hist] == [
            (False, moved),
            (True, None),
        ]
        # Departure before arrival rejected.
        r = await http.post(
            f"/v1/registrations/{second['id']}/departure",
            json={"departure_date": (TODAY - timedelta(days=20)).isoformat()},
        )
        assert r.status_code == 422
        assert r.json()["type"] == "urn:gridgov:problem:departure-before-arrival"
        r = await http.post(
            f"/v1/registrations/{second['id']}/departure",
            json={"departure_date": TODAY.isoformat()},
        )
        assert r.status_code == 200 and r.json()["active"] is False
        person = (await http.get(f"/v1/persons/{pid}")).json()
        assert person["active_registration_id"] is None
    ended = await outbox_events(pop, "residence.ended")
    assert ended[0]["data"]["moved_to_grid_code"] == city.grid_east
    assert ended[0]["gridcode"] == city.grid_west
    registered = await outbox_events(pop, "residence.registered")
    assert [e["gridcode"] for e in registered] == [city.grid_west, city.grid_east]


async def test_local_classification(pop, city):
    async with pop.client(OFFICER) as http:
        house = (await http.post("/v1/houses", json=house_body(city))).json()
        pid = await _person(http, household_region_code="440306")
        r = await http.post(
            "/v1/registrations",
            json={
                "person_id": pid,
                "house_id": house["id"],
                "arrival_date": TODAY.isoformat(),
                "reason": "family",
            },
        )
        assert r.json()["classification"] == "local"
        r = await http.post(
            "/v1/outflow-reports",
            json={"person_id": pid, "community_code": city.community, "destination": "广州"},
        )
        assert r.status_code == 201, r.text
        # Registered here (household), living elsewhere once the local period ends: outflow.
        reg = (await http.get(f"/v1/persons/{pid}/registrations")).json()["items"][0]
        await http.post(
            f"/v1/registrations/{reg['id']}/departure", json={"departure_date": TODAY.isoformat()}
        )
        assert (await http.get(f"/v1/persons/{pid}")).json()["classification"] == "outflow"


async def test_overcrowded_dorm_raised_once_and_cleared(pop, city):
    async with pop.client(OFFICER) as http:
        dorm = (
            await http.post(
                "/v1/houses",
                json=house_body(city, use="collective_dormitory", floor_area_m2=10.0, rooms=[]),
            )
        ).json()
        regs = []
        for seq in (11, 13, 15, 17, 19):
            pid = await _person(http, seq=seq, name=f"工人{seq}")
            r = await http.post(
                "/v1/registrations",
                json={
                    "person_id": pid,
                    "house_id": dorm["id"],
                    "arrival_date": TODAY.isoformat(),
                    "reason": "work",
                },
            )
            assert r.status_code == 201, r.text
            regs.append(r.json()["id"])
        # 10 m² / 4 = 2.5 < 3 at the 4th; the 5th keeps it overcrowded: one event.
        crowded = await outbox_events(pop, "house.overcrowded")
        assert len(crowded) == 1
        data = crowded[0]["data"]
        assert data["occupants"] == 4 and data["area_per_occupant_m2"] == 2.5
        assert data["house_code"] == dorm["house_code"] and crowded[0]["gridcode"] == city.grid_west
        got = (await http.get(f"/v1/houses/{dorm['id']}")).json()
        assert got["overcrowded_units"] == ["house"]
        for reg in regs[:2]:
            await http.post(
                f"/v1/registrations/{reg}/departure", json={"departure_date": TODAY.isoformat()}
            )
        cleared = await outbox_events(pop, "house.overcrowding_cleared")
        assert len(cleared) == 1 and cleared[0]["data"]["occupants"] == 3
        # Room-level rule applies to rooms of any house.
        house = (
            await http.post(
                "/v1/houses", json=house_body(city, rooms=[{"number": "A", "area_m2": 5.0}])
            )
        ).json()
        for seq in (21, 23):
            pid = await _person(http, seq=seq, name=f"租客{seq}")
            await http.post(
                "/v1/registrations",
                json={
                    "person_id": pid,
                    "house_id": house["id"],
                    "room_number": "A",
                    "arrival_date": TODAY.isoformat(),
                    "reason": "work",
                },
            )
        crowded = await outbox_events(pop, "house.overcrowded")
        assert len(crowded) == 2 and crowded[1]["data"]["room_number"] == "A"
        # Fixing the room (bigger area) clears it.
        r = await http.patch(
            f"/v1/houses/{house['id']}", json={"rooms": [{"number": "A", "area_m2": 8.0}]}
        )
        assert r.status_code == 200, r.text
        cleared = await outbox_events(pop, "house.overcrowding_cleared")
        assert len(cleared) == 2


async def test_special_groups_flagged_and_events_carry_no_pii(pop, city):
    child_birth = TODAY.replace(year=TODAY.year - 10).strftime("%Y%m%d")
    child_id = make_id(birth=child_birth, seq=41)
    async with pop.client(OFFICER) as http:
        house = (await http.post("/v1/houses", json=house_body(city))).json()
        r = await http.post(
            "/v1/persons",
            json=person_body(
                id_number=child_id,
                birth_date=None,
                name="小明",
                flags=["left_behind_child"],
                phone="13700009999",
            ),
        )
        pid = r.json()["id"]
        assert r.json()["special_groups"] == ["left_behind_child", "minor_under_16"]
        await http.post(
            "/v1/registrations",
            json={
                "person_id": pid,
                "house_id": house["id"],
                "arrival_date": TODAY.isoformat(),
                "reason": "family",
            },
        )
        # Re-flagging does not publish again.
        await http.patch(f"/v1/persons/{pid}", json={"flags": ["left_behind_child"]})
    flagged = await outbox_events(pop, "special_group.flagged")
    assert sorted(e["data"]["group"] for e in flagged) == ["left_behind_child", "minor_under_16"]
    assert all(e["gridcode"] == city.grid_west for e in flagged)
    assert flagged[0]["data"]["masked_name"] == "小*"
    for body in await outbox_bodies(pop):
        assert child_id not in body and "13700009999" not in body
        assert child_id[:17] not in body and "1370000" not in body
        json.loads(body)


async def test_handover_to_another_street_needs_the_document_number(pop, city):
    street1 = token_for(roles=["registrar"], scopes=[city.street], subject="registrar-1")
    number = make_id(seq=61)
    async with pop.client(OTHER_STREET) as http:
        r = await http.post(
            "/v1/persons", json=person_body(region=city.other_community, id_number=number)
        )
        pid = r.json()["id"]
    async with pop.client(street1) as http:
        house = (await http.post("/v1/houses", json=house_body(city))).json()
        body = {
            "person_id": pid,
            "house_id": house["id"],
            "arrival_date": TODAY.isoformat(),
            "reason": "work",
        }
        r = await http.post("/v1/registrations", json=body)
        assert r.status_code == 404
        r = await http.post("/v1/registrations", json={**body, "id_number": make_id(seq=63)})
        assert r.status_code == 404
        r = await http.post(
            "/v1/registrations",
            json={**body, "id_number": number},
            headers={"Idempotency-Key": "k1"},
        )
        assert r.status_code == 201, r.text
        # A mobile retry of the same request returns the first result, no second registration.
        again = await http.post(
            "/v1/registrations",
            json={**body, "id_number": number},
            headers={"Idempotency-Key": "k1"},
        )
        assert again.status_code == 201 and again.json()["id"] == r.json()["id"]
        assert again.headers.get("idempotent-replayed") == "true"
        assert (await http.get(f"/v1/persons/{pid}")).json()["region_code"] == city.grid_west
    async with pop.client(OTHER_STREET) as http:
        assert (await http.get(f"/v1/persons/{pid}")).status_code == 404
