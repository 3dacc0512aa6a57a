"""The command dashboard as a person uses it: Debian's Chromium (headless) driven by Playwright.

Four services, one real broker and the dashboard server run on loopback (the ``platform``
fixture); the data is created through the public APIs; the browser signs in, looks at the map,
watches a hazard arrive live, opens it, reads the charts, and a street-scoped user is checked
not to see the other street.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from gridgov_common.dashboard import DashboardSettings, create_dashboard
from gridgov_common.demo.photos import gradient_photo
from gridgov_common.testing import RunningService, eventually, serve, token_for
from gridgov_population.citizen_id import check_char

from .conftest import ADMIN, INSPECTOR, Platform

CHROMIUM = Path("/usr/bin/chromium")
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
REPO = Path(__file__).resolve().parents[1]
CHARTS = ["hazards", "missed", "closure", "inspectors", "departments", "staffing"]


async def add_site(p: Platform, grid_code: str, name: str, offset: float = 0.0) -> dict[str, Any]:
    lon, lat = p.city.point_in(grid_code)
    lon += offset
    async with p.inspection.client(ADMIN) as http:
        venue = await http.post(
            "/v1/venues",
            json={
                "name": name,
                "venue_type": "restaurant",
                "address": f"{name}·海裕路{int(offset * 1e4) + 1}号",
                "location": [lon, lat],
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
        "checkpoint": checkpoint.json(),
        "point": (lon, lat),
        "items": {i["code"]: i["title"] for i in items},
    }


async def inspect(p: Platform, site: dict[str, Any], fail: set[str] = frozenset()) -> Any:
    body = {
        "checkpoint_id": site["checkpoint"]["id"],
        "tag_uid": site["checkpoint"]["tag_uid"],
        "scanned_at": datetime.now(UTC).isoformat(),
        "position": list(site["point"]),
        "accuracy_m": 6,
        "answers": [
            {
                "item_code": code,
                "result": "fail" if code in fail else "pass",
                "note": "安全出口被杂物堵塞" if code in fail else None,
            }
            for code in site["items"]
        ],
    }
    colour = (200, 60, 40) if fail else (40, 160, 90)
    async with p.inspection.client(INSPECTOR) as http:
        r = await http.post(
            "/v1/inspections",
            data={"inspection": json.dumps(body)},
            files=[("photos", ("scene.png", gradient_photo(colour), "image/png"))],
        )
    assert r.status_code == 201, r.text
    return r.json()


async def overcrowded_dormitory(p: Platform) -> dict[str, Any]:
    """A collective dormitory whose one room gives two residents under 3 m² each."""
    lon, lat = p.city.point_in(p.city.grid_east)
    async with p.population.client(ADMIN) as http:
        house = await http.post(
            "/v1/houses",
            json={
                "community_code": p.city.community,
                "address": "海裕路88号宿舍",
                "lon": lon,
                "lat": lat + 0.003,
                "owner_name": "陈业主",
                "floor_area_m2": 40,
                "use": "collective_dormitory",
                "rooms": [{"number": "101", "area_m2": 5}],
            },
        )
        assert house.status_code == 201, house.text
        for seq, name in enumerate(("张伟", "李强")):
            first17 = f"42010219900101{101 + 2 * seq:03d}"
            person = await http.post(
                "/v1/persons",
                json={
                    "region_code": p.city.street,
                    "name": name,
                    "id_number": first17 + check_char(first17),
                    "household_region_code": "420102",
                    "household_address": "湖北省武汉市",
                },
            )
            assert person.status_code == 201, person.text
            reg = await http.post(
                "/v1/registrations",
                json={
                    "person_id": person.json()["id"],
                    "house_id": house.json()["id"],
                    "room_number": "101",
                    "arrival_date": date.today().isoformat(),
                    "reason": "work",
                },
            )
            assert reg.status_code == 201, reg.text
        return (await http.get(f"/v1/houses/{house.json()['id']}")).json()


@pytest.fixture
async def dashboard(platform: Platform, kafka_broker) -> AsyncIterator[RunningService]:
    settings = DashboardSettings(
        grid_svc_url=platform.grid.url,
        inspection_svc_url=platform.inspection.url,
        population_svc_url=platform.population.url,
        notify_svc_url=platform.notify.url,
        kafka_bootstrap_servers=kafka_broker.bootstrap,
        dashboard_dir=REPO / "dashboard",
    )
    async with serve(create_dashboard(settings)) as svc:
        yield svc


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: run `make chromium` (apt-get install chromium); "
            "the dashboard tests drive Debian's Chromium, never a downloaded browser build"
        )
    if not (REPO / "dashboard" / "node_modules" / "leaflet").is_dir():
        pytest.fail("dashboard/node_modules is missing: run `make dashboard-deps` (npm ci)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


async def open_as(browser: Any, dashboard: RunningService, identity: str) -> Any:
    page = await browser.new_page(viewport={"width": 1600, "height": 1000}, locale="zh-CN")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    await page.goto(dashboard.url)
    await page.click(f"button.demo[data-identity={identity}]")
    await page.wait_for_selector("#app:not([hidden])")
    return page


async def test_map_live_hazard_detail_and_charts(platform, dashboard, browser):
    p = platform
    kitchen = await add_site(p, p.city.grid_west, "老王饭店")
    noodles = await add_site(p, p.city.grid_east, "兰州拉面", offset=0.002)
    await inspect(p, kitchen)
    await inspect(p, noodles)
    async with p.grid.client(ADMIN) as http:
        r = await http.post(
            f"/v1/grids/{p.city.grid_west}/members",
            json={"role": "coordinator", "name": "刘芳", "valid_from": "2026-01-01"},
        )
        assert r.status_code == 201, r.text
    house = await overcrowded_dormitory(p)
    assert house["overcrowded_units"], house

    page = await open_as(browser, dashboard, "command")
    # The map: the demo grids as polygons, the checkpoints as green markers, the house flagged.
    await page.wait_for_selector('#map[data-grid-count="3"]')
    assert await page.locator("path.grid-poly").count() == 3
    cp = kitchen["checkpoint"]["id"]
    marker = page.locator(f'path[data-checkpoint-id="{cp}"]')
    await marker.wait_for()
    assert await marker.get_attribute("data-status") == "green"
    await page.wait_for_selector(f'.house.crowded[data-house-id="{house["id"]}"]')

    # Live: a hazard reported through the API turns the marker red without a reload.
    await page.wait_for_selector('#live-status[data-state="on"]')
    await inspect(p, kitchen, fail={"exits_clear"})
    await page.wait_for_selector(
        f'path[data-checkpoint-id="{cp}"][data-status="red"]', timeout=15_000
    )
    await page.wait_for_selector(".feed-item.red", timeout=15_000)

    # Clicking the red checkpoint shows the hazard and the inspection photos.
    await page.locator(f'path[data-checkpoint-id="{cp}"]').click()
    hazard = page.locator("#detail-body .hazard-item")
    await hazard.first.wait_for()
    assert kitchen["items"]["exits_clear"] in await hazard.first.inner_text()
    await page.wait_for_function(
        "document.querySelectorAll('#detail-body img[data-photo][src^=\"blob:\"]').length >= 2"
    )
    await page.wait_for_function(
        "[...document.querySelectorAll('#detail-body img[data-photo]')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )

    # The charts render with data (the department chart once the dispatches are delivered).
    async def delivered() -> bool:
        return all(p.receivers[n].accepted for n in ("police-xinan", "fire-baoan"))

    await eventually(delivered, timeout=30)
    await page.wait_for_selector('.feed-item[data-type$="dispatch.state_changed"]')
    await page.wait_for_function(
        "ids => ids.every(id => Number(document.getElementById('chart-' + id).dataset.points) > 0"
        " && document.querySelector('#chart-' + id + ' canvas'))",
        arg=CHARTS,
        timeout=30_000,
    )
    assert page.errors == []


async def test_a_street_user_sees_nothing_of_another_street(platform, dashboard, browser):
    p = platform
    mine = await add_site(p, p.city.grid_west, "老王饭店")
    theirs = await add_site(p, p.city.other_grid, "固戍小卖部")
    # Signed in with a token of the identity provider's kind (here: minted for the test).
    page = await browser.new_page(viewport={"width": 1600, "height": 1000}, locale="en-GB")
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    await page.goto(dashboard.url)
    await page.fill("#token", "not-a-jwt")
    await page.click("#signin-form button[type=submit]")
    await page.wait_for_selector("#signin-error:text('invalid')")
    street_viewer = token_for(roles=["viewer"], scopes=[p.city.street], subject="police-xinan")
    await page.fill("#token", street_viewer)
    await page.click("#signin-form button[type=submit]")
    await page.wait_for_selector("#app:not([hidden])")
    await page.wait_for_selector('#map[data-grid-count="2"]')
    codes = await page.eval_on_selector_all("path.grid-poly", "els => els.map(e => e.dataset.code)")
    assert sorted(codes) == [p.city.grid_west, p.city.grid_east]
    options = await page.eval_on_selector_all(
        "#region-filter option", "els => els.map(e => e.value)"
    )
    assert p.city.other_street not in options and p.city.street in options
    await page.locator(f'path[data-checkpoint-id="{mine["checkpoint"]["id"]}"]').wait_for()
    assert await page.locator(f'[data-checkpoint-id="{theirs["checkpoint"]["id"]}"]').count() == 0

    # Live events are filtered too: the other street's hazard (published first, on the same
    # single partition) never shows; this street's, published after it, does.
    await page.wait_for_selector('#live-status[data-state="on"]')
    await inspect(p, theirs, fail={"exits_clear"})
    await inspect(p, mine, fail={"exits_clear"})
    await page.wait_for_selector(
        f'path[data-checkpoint-id="{mine["checkpoint"]["id"]}"][data-status="red"]',
        timeout=15_000,
    )
    feed = await page.locator("#feed").inner_text()
    assert "老王饭店" in feed and "固戍" not in feed
    assert page.errors == []


async def test_the_dashboard_server_forwards_reads_only_and_guards_its_doors(kafka_broker):
    settings = DashboardSettings(
        grid_svc_url="http://127.0.0.1:9",  # nothing listens: the proxy answers 503
        kafka_bootstrap_servers=kafka_broker.bootstrap,
        dashboard_dir=REPO / "dashboard",
    )
    async with serve(create_dashboard(settings)) as svc, svc.client() as http:
        page = await http.get("/")
        assert page.status_code == 200 and "/app/main.js" in page.text
        assert (await http.get("/vendor/leaflet.js")).status_code == 200
        assert (await http.get("/vendor/nothing.js")).status_code == 404
        config = (await http.get("/config.json")).json()
        assert [d["key"] for d in config["demo_identities"]] == ["command", "police", "community"]
        token = (await http.post("/auth/demo/police")).json()["token"]
        assert (await http.post("/auth/demo/root")).status_code == 404
        down = await http.get("/api/grid/v1/regions", headers={"Authorization": f"Bearer {token}"})
        assert down.status_code == 503
        assert down.json()["type"] == "urn:gridgov:problem:service-unavailable"
        assert (await http.get("/api/billing/v1/x")).status_code == 404
        assert (await http.get("/api/grid/readyz")).status_code == 404  # only /v1 is forwarded
        assert (await http.post("/api/grid/v1/regions", json={})).status_code == 405
        live = await http.get("/live")
        assert live.status_code == 401 and live.json()["type"] == "urn:gridgov:problem:unauthorized"

    for production in (
        {"jwt_jwks_url": "https://idp.invalid/jwks.json"},
        {"jwt_signing_key": "a-key-of-this-installation-not-the-development-one"},
    ):
        settings = DashboardSettings(
            **production,
            kafka_bootstrap_servers=kafka_broker.bootstrap,
            dashboard_dir=REPO / "dashboard",
        )
        async with serve(create_dashboard(settings)) as svc, svc.client() as http:
            assert (await http.get("/config.json")).json()["demo_identities"] == []
            refused = await http.post("/auth/demo/command")
            assert refused.status_code == 404
            assert refused.json()["type"] == "urn:gridgov:problem:demo-sign-in-disabled"
