"""Take the README's dashboard screenshots from a running ``make run`` (demo city).

``make screenshots`` (or ``.venv/bin/python dashboard/screenshots.py --out docs/screenshots``).
It first adds a day of activity to the demo city through the public APIs only — departments,
venues with tagged checkpoints, inspections with photos, hazards, acknowledgements, a
dormitory and its residents — once per ``var/`` (a marker file records it), then drives
Debian's Chromium headless through the page as a person would.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import struct
import sys
import time
import zlib
from datetime import UTC, date, datetime
from pathlib import Path

import httpx

from gridgov_common.auth import issue_token
from gridgov_common.settings import VAR_DIR, ServiceSettings

DASHBOARD = "http://127.0.0.1:8100"
URLS = {
    "grid": "http://127.0.0.1:8101",
    "inspection": "http://127.0.0.1:8102",
    "population": "http://127.0.0.1:8103",
    "notify": "http://127.0.0.1:8104",
}
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MARKER = VAR_DIR / "dashboard-screens-seeded"
VENUES = [
    ("restaurant", "川味小馆"),
    ("restaurant", "潮汕砂锅粥"),
    ("shop", "便民超市"),
    ("hotel", "如家旅馆"),
    ("internet_cafe", "极速网吧"),
    ("workshop", "五金加工坊"),
    ("clinic", "社区诊所"),
    ("beauty_bath", "丽人美容院"),
    ("entertainment", "欢乐KTV"),
    ("school_kindergarten", "阳光幼儿园"),
]
INSPECTORS = ["督导员-陈", "督导员-林", "督导员-黄", "督导员-周", "督导员-吴", "督导员-郑"]


def png(rgb: tuple[int, int, int], size: tuple[int, int] = (160, 120)) -> bytes:
    width, height = size
    rows = b"".join(
        b"\x00"
        + bytes(
            min(255, c * (x + 2 * y) // (width + 2 * height) + 30)
            for x in range(width)
            for c in rgb
        )
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"tEXt", b"Comment\x00" + os.urandom(8).hex().encode())
        + chunk(b"IEND", b"")
    )


def citizen_id(first17: str) -> str:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return (
        first17 + "10X98765432"[sum(int(d) * w for d, w in zip(first17, weights, strict=True)) % 11]
    )


def client(service: str, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=URLS[service], headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def seed(rng: random.Random) -> None:
    settings = ServiceSettings()
    admin = issue_token(settings, subject="screens", roles=["admin"], scopes=["440306"])
    grid = client("grid", admin)
    grids = [
        f
        for f in grid.get("/v1/regions/440306/export").json()["features"]
        if f["properties"]["level"] == "grid"
    ]
    streets = sorted({g["properties"]["code"][:9] for g in grids})
    communities = sorted({g["properties"]["code"][:12] for g in grids})
    with client("notify", admin) as notify:
        notify.post(
            "/v1/departments",
            json={
                "id": "fire-baoan",
                "name": "宝安消防救援大队",
                "type": "fire_brigade",
                "jurisdictions": ["440306"],
            },
        )
        for i, street in enumerate(streets):
            notify.post(
                "/v1/departments",
                json={
                    "id": f"police-{i + 1}",
                    "name": f"{['新安', '西乡', '航城', '福永'][i]}派出所",
                    "type": "police_station",
                    "jurisdictions": [street],
                },
            )
        names = {
            f["properties"]["code"]: f["properties"]["name"]
            for f in grid.get("/v1/regions/440306/export").json()["features"]
        }
        for community in communities[:6]:
            notify.post(
                "/v1/departments",
                json={
                    "id": f"committee-{community}",
                    "name": f"{names[community]}居委会",
                    "type": "community_committee",
                    "jurisdictions": [community],
                },
            )
    inspection = client("inspection", admin)
    templates = {
        t: [i["code"] for i in inspection.get(f"/v1/templates/{t}").json()["items"]]
        for t in {v[0] for v in VENUES}
    }
    chosen = rng.sample(grids, 40)
    for n, feature in enumerate(chosen):
        ring = feature["geometry"]["coordinates"][0]
        lon = sum(p[0] for p in ring[:-1]) / (len(ring) - 1)
        lat = sum(p[1] for p in ring[:-1]) / (len(ring) - 1)
        vtype, vname = VENUES[n % len(VENUES)]
        venue = inspection.post(
            "/v1/venues",
            json={
                "name": vname,
                "venue_type": vtype,
                "address": f"宝安大道{100 + n * 7}号",
                "location": [lon, lat],
                "floor_area_m2": rng.randint(40, 400),
            },
        ).json()
        inspector = INSPECTORS[n % len(INSPECTORS)]
        cp = inspection.post(
            f"/v1/venues/{venue['id']}/checkpoints",
            json={
                "name": "消防通道",
                "tag_uid": os.urandom(7).hex().upper(),
                "cycle_days": 30,
                "assigned_inspector": inspector,
            },
        ).json()
        token = issue_token(settings, subject=inspector, roles=["inspector"], scopes=["440306"])
        fail = set()
        if n % 3 == 0:
            fail = {rng.choice(templates[vtype])}
        for round_ in range(2 if fail else 1):
            body = {
                "checkpoint_id": cp["id"],
                "tag_uid": cp["tag_uid"],
                "scanned_at": datetime.now(UTC).isoformat(),
                "position": [lon, lat],
                "accuracy_m": 5,
                "answers": [
                    {
                        "item_code": c,
                        "result": "fail" if c in fail and round_ == 0 else "pass",
                        "note": "检查发现问题，已拍照取证" if c in fail else None,
                        **({"severity": "major"} if c in fail and n % 2 else {}),
                    }
                    for c in templates[vtype]
                ],
            }
            with client("inspection", token) as http:
                colour = (210, 70, 50) if fail and round_ == 0 else (50, 170, 110)
                http.post(
                    "/v1/inspections",
                    data={"inspection": json.dumps(body)},
                    files=[
                        ("photos", ("a.png", png(colour), "image/png")),
                        ("photos", ("b.png", png((60, 120, 200)), "image/png")),
                    ],
                )
            if fail and n % 6 != 0:
                break  # most hazards stay open; every sixth venue is fixed and re-inspected
    time.sleep(4)  # let notify-svc route the hazards
    with client("notify", admin) as notify:
        departments = notify.get("/v1/departments").json()["items"]
    for dept in departments:
        token = issue_token(
            settings,
            subject=f"user-{dept['id']}",
            roles=["department"],
            scopes=["440306"],
            department_id=dept["id"],
        )
        with client("notify", token) as http:
            for d in http.get("/v1/dispatches").json()["items"]:
                if rng.random() < 0.75:
                    http.post(f"/v1/dispatches/{d['id']}/ack")
                if rng.random() < 0.4:
                    http.post(
                        f"/v1/dispatches/{d['id']}/feedback",
                        json={"result": "in_progress", "note": "已安排整改"},
                    )
    with client("population", admin) as population:
        for g, feature in enumerate(rng.sample(grids, 6)):
            code = feature["properties"]["code"]
            ring = feature["geometry"]["coordinates"][0]
            lon, lat = ring[0][0] + 0.0012, ring[0][1] + 0.0010
            house = population.post(
                "/v1/houses",
                json={
                    "community_code": code[:12],
                    "address": f"工业区{g + 1}栋宿舍",
                    "lon": lon,
                    "lat": lat,
                    "owner_name": "业主",
                    "floor_area_m2": 20 if g < 2 else 60,
                    "use": "collective_dormitory",
                    "rooms": [],
                },
            ).json()
            residents = rng.randint(8, 30) if g < 2 else rng.randint(4, 12)
            for i in range(residents):
                person = population.post(
                    "/v1/persons",
                    json={
                        "region_code": code[:9],
                        "name": f"住户{g}{i}",
                        "id_number": citizen_id(
                            f"4201021990{(g % 9) + 1:02d}{i % 28 + 1:02d}{g * 40 + i:03d}"
                        ),
                        "household_region_code": "420102",
                        "household_address": "湖北省武汉市",
                    },
                )
                if person.status_code == 201:
                    population.post(
                        "/v1/registrations",
                        json={
                            "person_id": person.json()["id"],
                            "house_id": house["id"],
                            "arrival_date": date.today().isoformat(),
                            "reason": "work",
                        },
                    )


def live_hazard(rng: random.Random) -> None:
    """One hazard reported while the page is open, so the live feed shows the loop start."""
    settings = ServiceSettings()
    admin = issue_token(settings, subject="screens", roles=["admin"], scopes=["440306"])
    with client("inspection", admin) as http:
        green = [c for c in http.get("/v1/checkpoints", params={"limit": 200}).json()["items"]]
        cp = rng.choice([c for c in green if c["colour"] == "green"])
        items = [i["code"] for i in http.get(f"/v1/templates/{cp['venue_type']}").json()["items"]]
    body = {
        "checkpoint_id": cp["id"],
        "tag_uid": cp["tag_uid"],
        "scanned_at": datetime.now(UTC).isoformat(),
        "position": cp["location"],
        "accuracy_m": 4,
        "answers": [
            {
                "item_code": c,
                "result": "fail" if c == items[0] else "pass",
                "note": "灭火器压力不足" if c == items[0] else None,
            }
            for c in items
        ],
    }
    token = issue_token(settings, subject=INSPECTORS[0], roles=["inspector"], scopes=["440306"])
    with client("inspection", token) as http:
        http.post(
            "/v1/inspections",
            data={"inspection": json.dumps(body)},
            files=[("photos", ("a.png", png((220, 80, 40)), "image/png"))],
        ).raise_for_status()


def shoot(out: Path) -> None:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1680, "height": 1050}, locale="zh-CN")
        page.goto(DASHBOARD)
        page.wait_for_selector("button.demo")
        page.screenshot(path=out / "dashboard-signin.png")
        page.click("button.demo[data-identity=command]")
        page.wait_for_selector("path[data-checkpoint-id]")
        page.wait_for_selector('#live-status[data-state="on"]')
        page.wait_for_function(
            "['hazards','missed','closure','inspectors','staffing'].every("
            "id => Number(document.getElementById('chart-' + id).dataset.points) > 0)"
        )
        live_hazard(random.Random(3))  # noqa: S311 - demo data
        page.wait_for_selector(".feed-item.red")
        page.wait_for_timeout(4000)  # the dispatches follow, and the charts refresh
        page.screenshot(path=out / "dashboard-map.png")
        page.locator("#charts").screenshot(path=out / "dashboard-charts.png")
        page.select_option("#region-filter", "440306001")
        page.wait_for_timeout(1500)
        page.locator('path[data-status="red"][data-checkpoint-id]').first.click()
        page.wait_for_selector("#detail-body .hazard-item")
        page.mouse.move(5, 5)
        page.evaluate("window.scrollTo(0, 0)")
        page.wait_for_timeout(1500)
        page.screenshot(path=out / "dashboard-detail.png")
        page.click("#signout")
        page.wait_for_selector("button.demo")
        page.click("button.lang-toggle >> visible=true")
        page.click("button.demo[data-identity=police]")
        page.wait_for_selector("path[data-checkpoint-id]")
        page.locator("path.grid-poly").first.click()
        page.wait_for_selector("#detail-body h4")
        page.mouse.move(5, 5)
        page.evaluate("window.scrollTo(0, 0)")
        page.wait_for_timeout(1500)
        page.screenshot(path=out / "dashboard-street-en.png")
        browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="docs/screenshots")
    args = parser.parse_args()
    try:
        httpx.get(f"{DASHBOARD}/healthz", timeout=3).raise_for_status()
    except httpx.HTTPError:
        print("start the platform first: make run (dashboard on :8100)", file=sys.stderr)
        return 1
    if not MARKER.exists():
        seed(random.Random(7))  # noqa: S311 - demo data
        MARKER.write_text(datetime.now(UTC).isoformat())
    shoot(Path(args.out))
    print(f"screenshots written to {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
