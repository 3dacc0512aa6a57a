"""No citizen ID number, phone number or private person's name in any log record or event.

A realistic day through all four services: grid members with phone numbers, a landlord and
residents registered (valid GB 11643 numbers, names, phones; a child of a special group, a
departure, an employer's roster, an unmasked and audited read, refused inputs), a venue's
operator and an inspection that opens a hazard which departments act on. Then every log
record of every service (gridgov loggers at DEBUG) and every message on every topic of the
broker are searched. population-svc's own tests cover encryption, masking and its outbox;
this covers what actually leaves the processes.

What events may carry: never a full citizen ID or phone number (docs/events.md), residents
only by id or masked name (the payloads in gridgov_common.events). Inspectors (token
subjects), grid members (named officials on duty) and departments may be named; a house's
address may be given, a resident's home address not.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, date, datetime
from typing import Any

from gridgov_common.demo.photos import unique_jpeg
from gridgov_common.testing import eventually
from gridgov_population.citizen_id import check_char

from .conftest import ADMIN, INSPECTOR, Platform, department_token
from .leaks import every_message, forms_of, found, log_text

TYPES_EXPECTED = {
    "gridgov.grid.member.assigned",
    "gridgov.population.residence.registered",
    "gridgov.population.residence.ended",
    "gridgov.population.special_group.flagged",
    "gridgov.population.house.overcrowded",
    "gridgov.inspection.hazard.reported",
    "gridgov.notify.dispatch.state_changed",
}


def citizen_id(region: str, birth: date, seq: int) -> str:
    first17 = f"{region}{birth:%Y%m%d}{seq:03d}"
    return first17 + check_char(first17)


def phone_forms(phone: str | None) -> list[str]:
    """As written, as digits, and without the country code."""
    if not phone:
        return []
    digits = "".join(c for c in phone if c.isdigit())
    return [phone, digits, digits.removeprefix("86")]


RESIDENTS = [
    # name, ID number, phone, birth date, sex, flags
    ("李晓梅", citizen_id("420102", date(1992, 3, 15), 432), "13912345678", "female", []),
    ("王建军", citizen_id("510104", date(1985, 11, 2), 517), "135-1234-8765", "male", []),
    ("张子涵", citizen_id("430102", date(2016, 6, 9), 286), None, "female", ["left_behind_child"]),
]
LANDLORD = ("陈建国", citizen_id("440306", date(1968, 4, 20), 179), "13602589147")
MEMBERS = [("周敏", "13725849631", "zhoumin@example.org"), ("吴强", "+86 136 4711 2058", None)]
OPERATOR = ("黄海涛", "13811112222")


def home_address(name: str) -> str:
    return f"武汉市江岸区解放大道{100 + [r[0] for r in RESIDENTS].index(name)}号"


def forbidden_values() -> dict[str, str]:
    values: dict[str, str] = {}
    for name, number, phone, *_ in RESIDENTS:
        values[f"name of {name}"] = name
        values[f"ID number of {name}"] = number
        values[f"ID number of {name} (lower case)"] = number.lower()
        values |= {f"phone of {name} ({f})": f for f in phone_forms(phone)}
        values[f"home address of {name}"] = home_address(name)
    name, number, phone = LANDLORD
    values |= {"landlord's name": name, "landlord's ID number": number}
    values |= {f"landlord's phone ({f})": f for f in phone_forms(phone)}
    for name, phone, email in MEMBERS:
        values |= {f"phone of grid member {name} ({f})": f for f in phone_forms(phone)}
        if email:
            values[f"e-mail of grid member {name}"] = email
    values[f"venue operator's name ({OPERATOR[0]})"] = OPERATOR[0]
    values |= {f"venue operator's phone ({f})": f for f in phone_forms(OPERATOR[1])}
    values["new phone of 李晓梅"] = "18688889999"
    values["name of 李小梅 (a duplicate record)"] = "李小梅"
    return values


async def register_everyone(p: Platform) -> None:
    async with p.grid.client(ADMIN) as http:
        for name, phone, email in MEMBERS:
            r = await http.post(
                f"/v1/grids/{p.city.grid_west}/members",
                json={
                    "name": name,
                    "role": "coordinator",
                    "phone": phone,
                    "email": email,
                    "valid_from": date.today().isoformat(),
                },
            )
            assert r.status_code == 201, r.text

    lon, lat = p.city.point_in(p.city.grid_west)
    async with p.population.client(ADMIN) as http:
        house = await http.post(
            "/v1/houses",
            json={
                "community_code": p.city.community,
                "address": "海裕社区工业区宿舍 3 栋",
                "lon": lon,
                "lat": lat,
                "owner_name": LANDLORD[0],
                "owner_id_number": LANDLORD[1],
                "owner_phone": LANDLORD[2],
                "floor_area_m2": 8.0,  # three residents: under 3 m² each, overcrowded
                "use": "collective_dormitory",
            },
        )
        assert house.status_code == 201, house.text
        registrations = {}
        for name, number, phone, sex, flags in RESIDENTS:
            person = await http.post(
                "/v1/persons",
                json={
                    "region_code": p.city.community,
                    "name": name,
                    "id_number": number,
                    "sex": sex,
                    "phone": phone,
                    "household_region_code": number[:6],
                    "household_address": home_address(name),
                    "flags": flags,
                },
            )
            assert person.status_code == 201, person.text
            reg = await http.post(
                "/v1/registrations",
                json={
                    "person_id": person.json()["id"],
                    "house_id": house.json()["id"],
                    "arrival_date": date.today().isoformat(),
                    "reason": "work",
                },
            )
            assert reg.status_code == 201, reg.text
            registrations[name] = (person.json()["id"], reg.json()["id"])

        # The same number again, a wrong check character, a search and an audited read.
        again = await http.post(
            "/v1/persons",
            json={"region_code": p.city.community, "name": "李小梅", "id_number": RESIDENTS[0][1]},
        )
        assert again.status_code == 201 and again.json()["duplicate_candidates"], again.text
        bad = RESIDENTS[1][1][:-1] + ("0" if RESIDENTS[1][1][-1] != "0" else "1")
        wrong = await http.post(
            "/v1/persons",
            json={"region_code": p.city.community, "name": "王建君", "id_number": bad},
        )
        assert wrong.status_code == 422, wrong.text
        search = await http.post("/v1/persons/search", json={"id_number": RESIDENTS[0][1]})
        assert search.status_code == 200 and search.json()["items"], search.text
        li = registrations["李晓梅"][0]
        read = await http.get(
            f"/v1/persons/{li}", params={"unmask": "true", "purpose": "核实居住证申请"}
        )
        assert read.status_code == 200 and read.json()["id_number"] == RESIDENTS[0][1]
        patched = await http.patch(f"/v1/persons/{li}", json={"phone": "18688889999"})
        assert patched.status_code == 200, patched.text

        employer = await http.post(
            "/v1/employers",
            json={"region_code": p.city.community, "name": "海裕电子厂", "address": "海裕路8号"},
        )
        assert employer.status_code == 201, employer.text
        hired = await http.post(
            f"/v1/employers/{employer.json()['id']}/employees",
            json={"person_id": li, "start_date": date.today().isoformat()},
        )
        assert hired.status_code == 201, hired.text
        wang_registration = registrations["王建军"][1]
        left = await http.post(
            f"/v1/registrations/{wang_registration}/departure",
            json={"departure_date": date.today().isoformat()},
        )
        assert left.status_code == 200, left.text


async def inspect_venue(p: Platform) -> None:
    lon, lat = p.city.point_in(p.city.grid_west)
    async with p.inspection.client(ADMIN) as http:
        venue = await http.post(
            "/v1/venues",
            json={
                "name": "海涛快餐店",
                "venue_type": "restaurant",
                "address": "海裕路3号",
                "location": [lon, lat],
                "operator_name": OPERATOR[0],
                "contact_phone": OPERATOR[1],
            },
        )
        assert venue.status_code == 201, venue.text
        cp = await http.post(
            f"/v1/venues/{venue.json()['id']}/checkpoints",
            json={"name": "后厨", "tag_uid": os.urandom(7).hex().upper(), "cycle_days": 30},
        )
        assert cp.status_code == 201, cp.text
        items = (await http.get("/v1/templates/restaurant")).json()["items"]
    body = {
        "checkpoint_id": cp.json()["id"],
        "tag_uid": cp.json()["tag_uid"],
        "scanned_at": datetime.now(UTC).isoformat(),
        "position": [lon, lat],
        "accuracy_m": 8,
        "answers": [
            {"item_code": i["code"], "result": "fail" if n == 0 else "pass", "note": "灭火器过期"}
            for n, i in enumerate(items)
        ],
    }
    photo = unique_jpeg(3000)
    async with p.inspection.client(INSPECTOR) as http:
        r = await http.post(
            "/v1/inspections",
            data={"inspection": json.dumps(body)},
            files=[("photos", ("scene.jpg", photo, "image/jpeg"))],
        )
        assert r.status_code == 201, r.text

    def delivered() -> list[dict[str, Any]]:
        return [
            d
            for d in p.receivers["police-xinan"].accepted
            if d["event"]["type"] == "gridgov.inspection.hazard.reported"
        ]

    (delivery,) = await eventually(delivered, timeout=30)
    async with p.notify.client(department_token("police-xinan")) as http:
        ack = await http.post(f"/v1/dispatches/{delivery['dispatch']['id']}/ack")
        assert ack.status_code == 200, ack.text


async def test_no_id_number_phone_or_private_name_in_logs_or_events(platform, caplog):
    caplog.set_level(logging.DEBUG, logger="gridgov")
    p = platform
    # The community committee is away today: the child's special-group events find no
    # department, and notify-svc logs them as unrouted (so there are service logs to read).
    async with p.notify.client(ADMIN) as http:
        r = await http.patch("/v1/departments/committee-haiyu", json={"active": False})
        assert r.status_code == 200, r.text
    await register_everyone(p)
    await inspect_venue(p)

    def unrouted_warnings() -> list[logging.LogRecord]:
        return [
            r
            for r in caplog.records
            if r.name.startswith("gridgov.") and "special_group.flagged" in r.getMessage()
        ]

    await eventually(unrouted_warnings, timeout=30)

    bootstrap = p.notify.ctx.settings.kafka_bootstrap_servers

    async def all_published() -> list[tuple[str, bytes]] | None:
        messages = await every_message(bootstrap)
        blob = b"".join(m for _, m in messages)
        return messages if all(f'"type":"{t}"'.encode() in blob for t in TYPES_EXPECTED) else None

    messages = await eventually(all_published, timeout=30, interval=0.5)
    forbidden = forms_of(forbidden_values())
    leaks = [(topic, found(message, forbidden)) for topic, message in messages]
    leaks += [(logger, found(text, forbidden)) for logger, text in log_text(caplog.records)]
    assert [leak for leak in leaks if leak[1]] == []
