"""The demo city's people (population-svc): persons with valid citizen ID numbers, rental
houses (a few overcrowded dormitories among them), residence registrations with moves and
departures, employers and their rosters, residence permits and points applications.

Dates are relative to ``today`` (China's date when the plan is made), so a permit issued
"eight months ago" is valid whenever the demo is loaded.
"""

from __future__ import annotations

import calendar
import random
from datetime import date, timedelta
from typing import Any

from .grid import person_name, random_point

PERSONS_PER_CITY = 5000
EMPLOYERS_PER_CITY = 120
# Household-registration places (GB/T 2260) of the floating population, and the district.
ORIGINS = [
    ("440306", "广东省深圳市宝安区", 12),
    ("420102", "湖北省武汉市江岸区", 8),
    ("430104", "湖南省长沙市岳麓区", 9),
    ("360102", "江西省南昌市东湖区", 6),
    ("450102", "广西壮族自治区南宁市兴宁区", 7),
    ("510104", "四川省成都市锦江区", 8),
    ("411302", "河南省南阳市宛城区", 9),
    ("441581", "广东省汕尾市陆丰市", 8),
    ("350102", "福建省福州市鼓楼区", 4),
    ("522601", "贵州省黔东南州凯里市", 5),
    ("130102", "河北省石家庄市长安区", 3),
    ("610102", "陕西省西安市新城区", 3),
]
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
EDUCATION = ["初中", "高中", "中专", "大专", "本科", "硕士"]
OCCUPATIONS = ["普工", "厨师", "快递员", "保安", "店员", "司机", "电工", "会计", "教师", "护士"]
POINTS_TABLE = {
    "version": "baoan-2026",
    "items": [
        {
            "code": "education",
            "category": "文化程度",
            "label": "学历",
            "kind": "choice",
            "choices": {"初中": 5, "高中": 10, "中专": 15, "大专": 40, "本科": 60, "硕士": 80},
        },
        {
            "code": "skill",
            "category": "技能",
            "label": "职业资格",
            "kind": "choice",
            "choices": {"none": 0, "junior": 10, "intermediate": 20, "senior": 35},
        },
        {
            "code": "residence_years",
            "category": "居住",
            "label": "连续居住年限",
            "kind": "per_unit",
            "points_per_unit": 5,
            "cap": 50,
        },
        {
            "code": "insurance_years",
            "category": "社保",
            "label": "社会保险缴纳年限",
            "kind": "per_unit",
            "points_per_unit": 3,
            "cap": 45,
        },
        {
            "code": "awards",
            "category": "奖励",
            "label": "表彰奖励",
            "kind": "per_unit",
            "points_per_unit": 10,
            "cap": 30,
        },
        {
            "code": "penalties",
            "category": "扣分",
            "label": "违法违规",
            "kind": "per_unit",
            "points_per_unit": -20,
            "cap": 60,
        },
    ],
}
PURPOSES = ["household_registration", "school_place", "medical_insurance"]


def id_number(region: str, birth: date, seq: int) -> str:
    """A GB 11643 number: region, birth date, sequence (odd = male), ISO 7064 check."""
    first17 = f"{region}{birth:%Y%m%d}{seq:03d}"
    total = sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=True))
    return first17 + "10X98765432"[total % 11]


def plan_population(
    rng: random.Random, grids: list[dict[str, Any]], scale: float, today: date
) -> dict[str, Any]:
    used: set[str] = set()

    def new_id(region: str, birth: date, sex: str) -> str:
        while True:
            seq = rng.randrange(1 if sex == "male" else 0, 1000, 2)
            number = id_number(region, birth, seq)
            if number[:17] not in used:
                used.add(number[:17])
                return number

    # Houses: mostly flats, and collective dormitories, a few of them overcrowded.
    houses: list[dict[str, Any]] = []
    n_persons = max(60, round(PERSONS_PER_CITY * scale))
    n_flats = max(len(grids), n_persons // 4)
    # One dormitory per community in the full city (at least two when scaled down).
    communities = sorted({g["parent_code"] for g in grids})
    communities = communities[: max(2, round(len(communities) * min(1.0, scale)))]
    for i in range(n_flats + len(communities)):
        dorm = i >= n_flats
        grid = (
            next(g for g in grids if g["parent_code"] == communities[i - n_flats])
            if dorm
            else grids[i % len(grids)]
        )
        lon, lat = random_point(rng, grid["boundary"])
        owner_birth = date(rng.randint(1955, 1990), rng.randint(1, 12), rng.randint(1, 28))
        owner_sex = rng.choice(["male", "female"])
        floor = rng.randint(1, 9)
        rooms: list[dict[str, Any]] = []
        if dorm:
            area = float(rng.randint(60, 160))
            layout = "集体宿舍"
            use = "collective_dormitory"
            capacity = int(area // 4)
        else:
            n_rooms = rng.randint(1, 4)
            rooms = [
                {"number": f"{floor}0{r + 1}", "area_m2": float(rng.randint(10, 22))}
                for r in range(n_rooms)
            ]
            area = float(sum(r["area_m2"] for r in rooms) + rng.randint(15, 40))
            layout = f"{len(rooms)}室1厅"
            use = "residential"
            capacity = max(1, int(area // 12))
        houses.append(
            {
                "key": f"h{i:04d}",
                "grid_code": grid["code"],
                "capacity": capacity,
                "body": {
                    "community_code": grid["parent_code"],
                    "address": f"{grid['name'].split('第')[0]}新村{rng.randint(1, 60)}栋"
                    f"{rng.randint(1, 8)}0{rng.randint(1, 4)}",
                    "lon": lon,
                    "lat": lat,
                    "owner_name": person_name(rng),
                    "owner_id_number": new_id("440306", owner_birth, owner_sex),
                    "owner_phone": f"13{rng.randint(100000000, 999999999)}",
                    "floor_area_m2": area,
                    "floor": floor,
                    "layout": layout,
                    "use": use,
                    "rooms": rooms,
                },
            }
        )
    # Overcrowded: a few dormitories get more residents than 3 m² each allows.
    dorms = [h for h in houses if h["body"]["use"] == "collective_dormitory"]
    crowded = rng.sample(dorms, max(1, len(dorms) // 4))
    for h in crowded:
        h["capacity"] = int(h["body"]["floor_area_m2"] // 3) + rng.randint(2, 5)
        h["overcrowded"] = True

    # Employers: factories, shops and services, one per few grids.
    employers = []
    for i in range(max(3, round(EMPLOYERS_PER_CITY * scale))):
        grid = rng.choice(grids)
        signed = today - timedelta(days=rng.randint(30, 900))
        has_agreement = rng.random() < 0.85
        employers.append(
            {
                "key": f"e{i:03d}",
                "body": {
                    "region_code": grid["code"],
                    "name": f"深圳市{person_name(rng)[:2]}"
                    f"{rng.choice(['电子', '制衣', '物流', '餐饮', '五金', '印刷'])}有限公司",
                    "credit_code": f"91440300MA{i:04d}{rng.randint(1000, 9999)}",
                    "address": f"{grid['name'].split('第')[0]}工业区{rng.randint(1, 30)}号",
                }
                | (
                    {
                        "agreement_signed": signed.isoformat(),
                        "agreement_expires": (signed + timedelta(days=730)).isoformat(),
                    }
                    if has_agreement
                    else {}
                ),
            }
        )

    # Persons. Each lives in a house with room; some moved once, a few have left, some work
    # unregistered (found through the employer's roster), a few are duplicate entries.
    origins = [o for o in ORIGINS for _ in range(o[2])]
    persons: list[dict[str, Any]] = []
    free = {h["key"]: h["capacity"] for h in houses}
    flats = [h for h in houses if h["body"]["use"] == "residential"]
    # Dormitories fill first (they are why employers register), then flats at random.
    order = [h for h in dorms for _ in range(h["capacity"])]
    for i in range(n_persons):
        region, origin_address, _ = rng.choice(origins)
        sex = rng.choice(["male", "female"])
        in_dorm = i < len(order)
        minor = not in_dorm and rng.random() < 0.12
        elderly = not minor and not in_dorm and rng.random() < 0.06
        age_days = (
            rng.randint(200, 15 * 365)
            if minor
            else rng.randint(61 * 365, 80 * 365)
            if elderly
            else rng.randint(18 * 365, 55 * 365)
        )
        birth = today - timedelta(days=age_days)
        if in_dorm:
            house = order[i]
        else:
            house = rng.choice(flats)
            while free[house["key"]] <= 0:
                house = rng.choice(flats)
        free[house["key"]] -= 1
        flags = []
        if elderly and rng.random() < 0.4:
            flags.append("empty_nest_elderly")
        if not minor and not elderly and rng.random() < 0.03:
            flags.append("returnee")
        arrival = today - timedelta(days=rng.randint(1, min(age_days, 6 * 365)))
        person: dict[str, Any] = {
            "key": f"p{i:05d}",
            "house": house["key"],
            "grid_code": house["grid_code"],
            "body": {
                "region_code": house["grid_code"],
                "name": person_name(rng),
                "id_number": new_id(region, birth, sex),
                "birth_date": birth.isoformat(),
                "sex": sex,
                "phone": None
                if minor
                else f"1{rng.choice('3589')}{rng.randint(100000000, 999999999)}",
                "education": None if minor else rng.choice(EDUCATION),
                "occupation": None if minor or elderly else rng.choice(OCCUPATIONS),
                "household_region_code": region,
                "household_address": origin_address,
                "flags": flags,
            },
            "arrival": arrival.isoformat(),
            "reason": "family" if minor or elderly else rng.choice(["work", "work", "business"]),
            "registered": in_dorm or minor or rng.random() > 0.02,
        }
        if not person["registered"]:
            person["body"]["region_code"] = house["grid_code"][:9]
        # An earlier period elsewhere (a move), ended by the current registration.
        if person["registered"] and arrival < today - timedelta(days=60) and rng.random() < 0.05:
            person["previous"] = {
                "house": rng.choice(flats)["key"],
                "arrival": (arrival - timedelta(days=rng.randint(60, 700))).isoformat(),
            }
            if person["previous"]["house"] == house["key"]:
                del person["previous"]
        if person["registered"] and house["body"]["use"] == "residential" and rng.random() < 0.03:
            person["departure"] = (today - timedelta(days=rng.randint(0, 20))).isoformat()
            person["departure"] = max(person["departure"], person["arrival"])
            free[house["key"]] += 1
        working = not minor and not elderly and person["reason"] in ("work", "business")
        if working and rng.random() < 0.45:
            employer = rng.choice(employers)
            start = max(arrival, today - timedelta(days=rng.randint(10, 1500)))
            person["job"] = {"employer": employer["key"], "start_date": start.isoformat()}
        staying = person["registered"] and "departure" not in person
        registered_since = date.fromisoformat(
            person.get("previous", {}).get("arrival", person["arrival"])
        )
        if staying and working and (today - registered_since).days > 200 and rng.random() < 0.18:
            earliest = _add_months(registered_since, 6)
            # Mostly issued within the last year (valid); some 12-14 months ago (suspended,
            # waiting for a late endorsement) when residence allows.
            back = rng.randint(0, (today - earliest).days)
            issue = today - timedelta(days=min(back, 420 if rng.random() < 0.1 else 330))
            issue = max(issue, earliest)
            person["permit"] = {
                "issue_date": issue.isoformat(),
                "evidence": [
                    {
                        "kind": "employment" if "job" in person else "housing",
                        "description": "劳动合同" if "job" in person else "房屋租赁合同",
                        "reference": f"HT{rng.randint(100000, 999999)}",
                    }
                ],
            }
        if staying and not minor and (today - registered_since).days > 365 and rng.random() < 0.1:
            person["points"] = {
                "purpose": rng.choice(PURPOSES),
                "facts": {
                    "education": person["body"]["education"],
                    "skill": rng.choice(["none", "none", "junior", "intermediate", "senior"]),
                    "insurance_years": rng.randint(0, 12),
                    "awards": rng.choice([0, 0, 0, 1, 2]),
                    "penalties": rng.choice([0] * 12 + [1]),
                },
            }
        persons.append(person)
    # Duplicates a registrar might enter: same name, birth date and household place as an
    # existing person, another number (a typo). They wait in the duplicate review queue.
    for j, original in enumerate(rng.sample(persons[: len(persons) // 2], 3)):
        body = dict(original["body"])
        birth = date.fromisoformat(body["birth_date"])
        body["id_number"] = new_id(body["household_region_code"], birth, body["sex"])
        body["region_code"] = original["grid_code"][:9]
        persons.append(
            {
                "key": f"d{j}",
                "house": None,
                "grid_code": original["grid_code"],
                "body": body,
                "registered": False,
                "duplicate_of": original["key"],
            }
        )
    return {
        "houses": houses,
        "employers": employers,
        "persons": persons,
        "points_table": POINTS_TABLE,
        "quotas": [
            {"year": today.year, "town_code": street, "purpose": purpose, "quota": quota}
            for street in sorted({g["code"][:9] for g in grids})
            for purpose, quota in zip(PURPOSES, (20, 40, 60), strict=True)
        ],
    }


def _add_months(day: date, months: int) -> date:
    """The same day ``months`` later, clamped to the month's end (as population-svc counts)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))
