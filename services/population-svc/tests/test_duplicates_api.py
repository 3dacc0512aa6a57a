"""Duplicate detection on registration, review and merge, through the API."""

from __future__ import annotations

from datetime import date

from .conftest import ADMIN, OFFICER, REVIEWER, house_body, make_id, person_body

TODAY = date.today()


async def test_duplicate_by_pinyin_reviewed_not_duplicate_then_not_flagged_again(pop):
    async with pop.client(OFFICER) as http:
        a = (await http.post("/v1/persons", json=person_body(name="张伟"))).json()
        assert a["duplicate_candidates"] == []
        r = await http.post(
            "/v1/persons",
            json=person_body(
                name="张玮", id_number=make_id("360102", seq=457), household_region_code="360102"
            ),
        )
        b = r.json()
        [cand] = b["duplicate_candidates"]
        assert cand["person_id"] == a["id"]
        assert cand["reasons"] == ["same_name_pinyin_birth_date"]
        assert cand["masked_name"] == "张*"
        # Different person by pinyin (张三) with the same birth date: not a candidate.
        r = await http.post(
            "/v1/persons", json=person_body(name="张三", id_number=make_id(seq=459))
        )
        assert r.json()["duplicate_candidates"] == []
    async with pop.client(REVIEWER) as http:
        listed = (await http.get("/v1/duplicates")).json()["items"]
        assert len(listed) == 1
        r = await http.post(
            f"/v1/duplicates/{cand['candidate_id']}/decision",
            json={"decision": "not_duplicate", "purpose": "different ID, different people"},
        )
        assert r.status_code == 200 and r.json()["status"] == "not_duplicate"
        assert (await http.get("/v1/duplicates")).json()["items"] == []
    async with pop.client(OFFICER) as http:
        # Unrelated change: not flagged again.
        r = await http.patch(f"/v1/persons/{b['id']}", json={"occupation": "厨师"})
        assert r.json()["duplicate_candidates"] == []
        # Data change in the facts: flagged again.
        r = await http.patch(f"/v1/persons/{b['id']}", json={"household_region_code": "420102"})
        assert [c["person_id"] for c in r.json()["duplicate_candidates"]] == [a["id"]]
        assert (
            "same_household_place_name_birth_date"
            not in r.json()["duplicate_candidates"][0]["reasons"]
        )


async def test_surname_readings_and_same_id(pop):
    async with pop.client(OFFICER) as http:
        a = (await http.post("/v1/persons", json=person_body(name="曾伟"))).json()
        # 曾 as a surname is zeng; 增伟 (zeng wei) is a typo candidate.
        r = await http.post(
            "/v1/persons", json=person_body(name="增伟", id_number=make_id(seq=901))
        )
        assert [c["person_id"] for c in r.json()["duplicate_candidates"]] == [a["id"]]
        # Same ID number (legacy 15-digit form of the same number) -> same_citizen_id.
        r = await http.post(
            "/v1/persons",
            json=person_body(name="曾伟", id_number="420102900101123", birth_date=None),
        )
        reasons = {c["person_id"]: c["reasons"] for c in r.json()["duplicate_candidates"]}
        assert reasons[a["id"]] == [
            "same_citizen_id",
            "same_household_place_name_birth_date",
            "same_name_pinyin_birth_date",
        ]


async def test_merge_moves_registrations_and_is_audited(pop, city):
    async with pop.client(OFFICER) as http:
        house = (await http.post("/v1/houses", json=house_body(city))).json()
        a = (await http.post("/v1/persons", json=person_body(name="王小明"))).json()
        b = (
            await http.post(
                "/v1/persons", json=person_body(name="汪晓鸣", id_number=make_id(seq=771))
            )
        ).json()
        r = await http.post(
            "/v1/registrations",
            json={
                "person_id": b["id"],
                "house_id": house["id"],
                "arrival_date": TODAY.isoformat(),
                "reason": "work",
            },
        )
        assert r.status_code == 201
        [cand] = b["duplicate_candidates"]
    async with pop.client(REVIEWER) as http:
        r = await http.post(
            f"/v1/duplicates/{cand['candidate_id']}/decision",
            json={"decision": "duplicate", "purpose": "same person, typo"},
        )
        assert r.status_code == 422
        r = await http.post(
            f"/v1/duplicates/{cand['candidate_id']}/decision",
            json={"decision": "duplicate", "survivor_id": a["id"], "purpose": "same person"},
        )
        assert r.status_code == 200, r.text
        r = await http.post(
            f"/v1/duplicates/{cand['candidate_id']}/decision",
            json={"decision": "duplicate", "survivor_id": a["id"], "purpose": "again"},
        )
        assert r.status_code == 409
    async with pop.client(OFFICER) as http:
        survivor = (await http.get(f"/v1/persons/{a['id']}")).json()
        assert survivor["active_registration_id"]
        assert survivor["region_code"] == city.grid_west
        loser = (await http.get(f"/v1/persons/{b['id']}")).json()
        assert loser["status"] == "merged" and loser["merged_into"] == a["id"]
        hist = (await http.get(f"/v1/persons/{a['id']}/registrations")).json()["items"]
        assert len(hist) == 1
    async with pop.client(ADMIN) as http:
        log = (await http.get("/v1/audit", params={"entity_id": a["id"]})).json()["items"]
    assert log[0]["action"] == "merge" and log[0]["actor"] == "reviewer-1"
    assert log[0]["purpose"] == "same person"
