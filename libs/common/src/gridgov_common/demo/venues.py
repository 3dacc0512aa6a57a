"""The demo city's fire-safety grid (inspection-svc): the nine small places, their tagged
checkpoints, and what the season's inspections find.

inspection-svc takes scans no older than its ``scan_max_age_seconds`` (15 min) and records
inspections, hazards and due dates at the time of submission, so the "season" is played at
load time: every checkpoint's script says whether it is inspected, refused once, found with a
hazard (and how far that hazard's loop gets) or left alone. Checkpoints on a daily cycle are
left alone on purpose: they turn yellow (missed) one day after loading.
"""

from __future__ import annotations

import random
from typing import Any

from cryptography.hazmat.primitives.ciphers.algorithms import AES
from cryptography.hazmat.primitives.cmac import CMAC

from .grid import GIVEN, SURNAMES, random_point
from .photos import encode_png

# (type, weight, name suffixes, checkpoint names)
VENUE_TYPES: list[tuple[str, int, list[str], list[str]]] = [
    ("shop", 30, ["便利店", "百货", "五金店", "水果店"], ["店面", "仓库"]),
    ("restaurant", 24, ["饭店", "餐馆", "粉店", "烧烤"], ["厨房", "大厅", "燃气间"]),
    ("hotel", 8, ["旅馆", "宾馆", "公寓酒店"], ["前台", "客房走廊", "楼梯间"]),
    ("entertainment", 5, ["KTV", "歌舞厅"], ["包厢走廊", "安全出口"]),
    ("internet_cafe", 5, ["网吧", "网咖"], ["大厅", "配电间"]),
    ("beauty_bath", 8, ["美容院", "足浴店", "理发店"], ["店面", "锅炉间"]),
    ("workshop", 12, ["制衣厂", "五金加工厂", "印刷厂"], ["车间", "仓库", "配电房"]),
    ("clinic", 5, ["诊所", "卫生站"], ["诊室", "药房"]),
    ("school_kindergarten", 3, ["幼儿园", "培训学校"], ["教学楼", "厨房", "午休室"]),
]
# Items every shipped template has (inspection-svc's common items), so the plan needs no I/O.
COMMON_ITEMS = [
    "extinguishers",
    "exits_clear",
    "emergency_lighting",
    "wiring",
    "no_living_quarters",
]
MAJOR_ITEMS = {"exits_clear", "no_living_quarters"}
# How far a found hazard's loop gets before the load ends (weights).
HAZARD_ENDS = {
    "dispatched": 2,  # nobody has acknowledged yet
    "acknowledged": 2,  # some departments acknowledged
    "rectification_reported": 2,  # a department reported the fix, re-inspection pending
    "closed": 3,  # fix verified by re-inspection
    "open": 1,  # re-inspection failed after the reported fix: back to open (rework)
}
FRONT_LINE = ["police_station", "fire_brigade", "community_committee"]
INSPECTORS = ["inspector-chen", "inspector-lin", "inspector-zhou", "inspector-huang"]
VENUES_PER_CITY = 600


def plan_venues(
    rng: random.Random, grids: list[dict[str, Any]], scale: float
) -> list[dict[str, Any]]:
    n = max(len(VENUE_TYPES), round(VENUES_PER_CITY * scale))
    types = [t for t in VENUE_TYPES for _ in range(t[1])]
    venues = []
    tags: set[str] = set()
    # Whatever the scale, the first hazards end in each state once, the first venue's first
    # checkpoint is refused once and the first hotel's reception is a daily (missed) point.
    ends = list(HAZARD_ENDS)
    for i in range(n):
        # Every type at least once, whatever the scale; then by weight.
        vtype, _, suffixes, cp_names = VENUE_TYPES[i] if i < len(VENUE_TYPES) else rng.choice(types)
        grid = grids[i % len(grids)] if i < len(grids) else rng.choice(grids)
        lon, lat = random_point(rng, grid["boundary"])
        owner = rng.choice(SURNAMES) + rng.choice(GIVEN)
        street_no = rng.randint(1, 300)
        venue = {
            "key": f"v{i:04d}",
            "grid_code": grid["code"],
            "inspector": INSPECTORS[(int(grid["code"][6:9]) - 1) % len(INSPECTORS)],
            "body": {
                "name": f"{owner[0]}记{rng.choice(suffixes)}",
                "venue_type": vtype,
                "address": f"{grid['name'].split('第')[0]}路{street_no}号",
                "location": [lon, lat],
                "floor_area_m2": float(rng.randint(20, 800)),
                "operator_name": owner,
                "contact_phone": f"13{rng.randint(100000000, 999999999)}",
                "licence_no": f"91440306MA{rng.randint(10000000, 99999999)}",
            },
            "checkpoints": [],
        }
        for c, cp_name in enumerate(rng.sample(cp_names, rng.randint(1, len(cp_names)))):
            uid = _tag_uid(rng, tags)
            secure = rng.random() < 0.3  # NTAG 424 DNA tags on about a third of them
            first = i < len(VENUE_TYPES) and c == 0
            daily = (first and vtype == "hotel") or (
                vtype in ("hotel", "entertainment", "internet_cafe") and rng.random() < 0.25
            )
            cp = {
                "key": f"v{i:04d}c{c}",
                "body": {
                    "name": cp_name,
                    "tag_uid": uid,
                    "cycle_days": 1 if daily else rng.choice([7, 14, 30]),
                    "assigned_inspector": venue["inspector"],
                }
                | ({"tag_key": rng.randbytes(16).hex().upper()} if secure else {}),
                # Location: the venue's point (the default); the GPS fix lands near it.
                "fix": _jitter(rng, lon, lat),
                "sun_counter": rng.randint(1, 200) if secure else None,
                # The round's scans lie in the last minutes (the API takes scans up to 15 min
                # old); a re-inspection is scanned just before it is sent.
                "scan_age_s": rng.randint(30, 480),
            }
            cp["script"] = "missed" if daily else _script(rng)
            if i == 0 and c == 0:
                cp["script"] = "refused_then_pass"
            elif first and not daily and ends:
                cp["script"] = "hazard"
            if cp["script"] == "hazard":
                cp["hazard"] = _hazard(rng, ends.pop(0) if ends else None)
            venue["checkpoints"].append(cp)
        venues.append(venue)
    return venues


def _tag_uid(rng: random.Random, taken: set[str]) -> str:
    while True:
        uid = "04" + rng.randbytes(6).hex().upper()  # 7-byte NXP UID
        if uid not in taken:
            taken.add(uid)
            return uid


def _jitter(rng: random.Random, lon: float, lat: float) -> list[float]:
    # Within ~10 m: 1e-4 degrees is ~10 m here.
    return [round(lon + rng.uniform(-6e-5, 6e-5), 6), round(lat + rng.uniform(-6e-5, 6e-5), 6)]


def _script(rng: random.Random) -> str:
    return rng.choices(["pass", "idle", "refused_then_pass", "hazard"], [74, 10, 3, 13])[0]


def _hazard(rng: random.Random, end: str | None) -> dict[str, Any]:
    end = end or rng.choices(list(HAZARD_ENDS), list(HAZARD_ENDS.values()))[0]
    items = rng.sample(COMMON_ITEMS, 1 if rng.random() < 0.85 else 2)
    acks = FRONT_LINE
    if end == "dispatched":
        acks = []
    elif end == "acknowledged":
        acks = sorted(rng.sample(FRONT_LINE, rng.randint(1, 3)))
    # Fire hazards of the major kind are confirmed by the fire brigade, the rest by the
    # community committee.
    fixer = "fire_brigade" if MAJOR_ITEMS & set(items) else "community_committee"
    return {"end": end, "fail": items, "acks": acks, "fixer": fixer}


# --- what a device sends ---------------------------------------------------------------


def sun_message(tag_key_hex: str, uid_hex: str, counter: int) -> dict[str, str]:
    """The plain-mirrored SUN message an NTAG 424 DNA tag would put in its URL on a read
    (NXP AN12196: SDMMAC over an empty MAC input with the session key from SV2)."""
    key = bytes.fromhex(tag_key_hex)
    sv2 = bytes.fromhex("3CC300010080") + bytes.fromhex(uid_hex) + counter.to_bytes(3, "little")
    session_key = _cmac(key, sv2)
    mac = _cmac(session_key, b"")[1::2]
    return {"uid": uid_hex, "counter": f"{counter:06X}", "cmac": mac.hex().upper()}


def _cmac(key: bytes, data: bytes) -> bytes:
    c = CMAC(AES(key))
    c.update(data)
    return c.finalize()


def photo(label: str, seed: int) -> bytes:
    """A small valid PNG, unique per ``label`` (inspection-svc refuses a reused photo)."""
    rng = random.Random(f"{seed}-{label}")  # noqa: S311 - demo pixels
    width, height = 16, 12
    base = [rng.randint(40, 220) for _ in range(3)]
    rows = b"".join(
        b"\x00"
        + bytes(max(0, min(255, c + rng.randint(-20, 20))) for _ in range(width) for c in base)
        for _ in range(height)
    )

    return encode_png(width, height, rows, b"gridgov demo " + label.encode())
