"""Persons through the real API: validation, encryption, masking, audited unmasking, scope."""

from __future__ import annotations

import base64

from sqlalchemy import select

from gridgov_population.models import Person

from .conftest import (
    ADMIN,
    OFFICER,
    OTHER_STREET,
    VIEWER,
    make_id,
    person_body,
)


async def test_create_person_encrypts_and_masks(pop):
    number = make_id()
    async with pop.client(OFFICER) as http:
        r = await http.post("/v1/persons", json=person_body(id_number=number))
        assert r.status_code == 201, r.text
        body = r.json()
    assert body["id_number"] == number[:4] + "*" * 10 + number[-4:]
    assert body["phone"] == "138****5678"
    assert body["masked"] is True
    assert body["name_pinyin"] == "zhang wei"
    async with pop.ctx.db.sessions() as session:
        row = (await session.scalars(select(Person))).one()
    assert number not in row.id_enc and row.id_bidx != number
    assert "13812345678" not in (row.phone_enc or "")


async def test_bad_identity_inputs_rejected(pop):
    good = make_id()
    wrong_check = good[:17] + ("0" if good[17] != "0" else "1")
    impossible = make_id(birth="19900230")
    async with pop.client(OFFICER) as http:
        r = await http.post("/v1/persons", json=person_body(id_number=wrong_check))
        assert r.status_code == 422 and "check character" in r.json()["detail"]
        r = await http.post("/v1/persons", json=person_body(id_number=impossible, birth_date=None))
        assert r.status_code == 422 and "not a real date" in r.json()["detail"]
        r = await http.post("/v1/persons", json=person_body(sex="female"))
        assert r.status_code == 422 and "sex" in r.json()["detail"]
        r = await http.post("/v1/persons", json=person_body(birth_date="1990-01-02"))
        assert r.status_code == 422 and "birth date" in r.json()["detail"]
        # Legacy 15-digit numbers are upgraded.
        r = await http.post(
            "/v1/persons", json=person_body(id_number="420102900101123", birth_date=None)
        )
        assert r.status_code == 201, r.text
        assert r.json()["id_number"].startswith("4201")
        assert len(r.json()["id_number"]) == 18
    async with pop.ctx.db.sessions() as session:
        assert len((await session.scalars(select(Person))).all()) == 1


async def test_foreign_national_by_passport(pop):
    async with pop.client(OFFICER) as http:
        body = person_body(
            id_number=None,
            passport_number="E12345678",
            nationality="KOR",
            name="KIM MINJUN",
            household_region_code=None,
        )
        r = await http.post("/v1/persons", json=body)
        assert r.status_code == 201, r.text
        assert r.json()["document_type"] == "passport"
        assert "12345678" not in r.json()["id_number"]
        r = await http.post("/v1/persons", json={**body, "birth_date": None})
        assert r.status_code == 422


async def test_unmasked_read_needs_role_and_purpose_and_is_audited(pop):
    number = make_id()
    async with pop.client(OFFICER) as http:
        pid = (await http.post("/v1/persons", json=person_body(id_number=number))).json()["id"]
        r = await http.get(f"/v1/persons/{pid}", params={"unmask": "true"})
        assert r.status_code == 422
        assert r.json()["type"] == "urn:gridgov:problem:purpose-required"
        r = await http.get(
            f"/v1/persons/{pid}", params={"unmask": "true", "purpose": "居住证办理核验"}
        )
        assert r.status_code == 200
        assert r.json()["id_number"] == number and r.json()["phone"] == "13812345678"
        assert r.json()["masked"] is False
        plain = await http.get(f"/v1/persons/{pid}")
        assert plain.json()["masked"] is True
    async with pop.client(VIEWER) as http:
        r = await http.get(f"/v1/persons/{pid}", params={"unmask": "true", "purpose": "curious"})
        assert r.status_code == 403
    async with pop.client(ADMIN) as http:
        log = (await http.get("/v1/audit", params={"entity_id": pid})).json()["items"]
    assert len(log) == 1
    entry = log[0]
    assert entry["actor"] == "officer-1" and entry["action"] == "unmask"
    assert entry["purpose"] == "居住证办理核验" and entry["fields"] == ["id_number", "phone"]
    assert entry["at"] and entry["request_id"]


async def test_cross_scope_read_and_write_refused(pop):
    async with pop.client(OFFICER) as http:
        pid = (await http.post("/v1/persons", json=person_body())).json()["id"]
    async with pop.client(OTHER_STREET) as http:
        r = await http.get(f"/v1/persons/{pid}")
        assert r.status_code == 404
        r = await http.post("/v1/persons", json=person_body(id_number=make_id(seq=5)))
        assert r.status_code == 403
        r = await http.post("/v1/persons/search", json={"name": "张伟", "birth_date": "1990-01-01"})
        assert r.status_code == 200 and r.json()["items"] == []


async def test_search_needs_two_attributes_or_full_id(pop):
    number = make_id()
    async with pop.client(OFFICER) as http:
        await http.post("/v1/persons", json=person_body(id_number=number))
        r = await http.post("/v1/persons/search", json={"name": "张伟"})
        assert r.status_code == 422
        assert r.json()["type"] == "urn:gridgov:problem:search-too-broad"
        r = await http.post("/v1/persons/search", json={"name": "张伟", "birth_date": "1990-01-01"})
        assert len(r.json()["items"]) == 1
        r = await http.post("/v1/persons/search", json={"id_number": number})
        assert len(r.json()["items"]) == 1
        assert r.json()["items"][0]["masked"] is True
        r = await http.post(
            "/v1/persons/search", json={"phone": "+86 138 1234 5678", "name": "张伟"}
        )
        assert len(r.json()["items"]) == 1
        # Bounded: at most search_max_results, whatever limit is asked.
        for seq in range(31, 81, 2):
            await http.post("/v1/persons", json=person_body(id_number=make_id(seq=seq)))
        r = await http.post(
            "/v1/persons/search",
            json={"name": "张伟", "birth_date": "1990-01-01", "limit": 100},
        )
        assert len(r.json()["items"]) == 20


async def test_key_rotation_keeps_data_readable(launch, grid, city):
    k1 = "k1:" + base64.b64encode(bytes(range(32))).decode()
    k2 = "k2:" + base64.b64encode(bytes(range(32, 64))).decode()
    number = make_id()
    async with launch("population", grid_svc_url=grid.url, pii_keys=k1, pii_active_key="k1") as pop:
        async with pop.client(OFFICER) as http:
            pid = (await http.post("/v1/persons", json=person_body(id_number=number))).json()["id"]
    ring = f"{k2},{k1}"
    async with launch(
        "population", grid_svc_url=grid.url, pii_keys=ring, pii_active_key="k2"
    ) as pop:
        async with pop.client(ADMIN) as http:
            r = await http.post("/v1/admin/pii-key-rotation")
            assert r.status_code == 200, r.text
            assert r.json()["rotated"]["persons.id_enc"] == 1
            assert r.json()["rotated"]["persons.phone_enc"] == 1
            r = await http.post("/v1/admin/pii-key-rotation")
            assert r.json()["rotated"]["persons.id_enc"] == 0
    async with launch("population", grid_svc_url=grid.url, pii_keys=k2, pii_active_key="k2") as pop:
        async with pop.client(OFFICER) as http:
            r = await http.get(f"/v1/persons/{pid}", params={"unmask": True, "purpose": "核验"})
            assert r.status_code == 200, r.text
            assert r.json()["id_number"] == number
            # The blind index is unchanged by rotation: search by number still finds it.
            r = await http.post("/v1/persons/search", json={"id_number": number})
            assert len(r.json()["items"]) == 1
