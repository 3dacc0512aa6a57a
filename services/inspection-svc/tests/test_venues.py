"""Venues, checkpoints, templates and the cycle rule against a real grid-svc."""

from __future__ import annotations

from sqlalchemy import func, select

from gridgov_common.testing import free_port
from gridgov_inspection.models import Checkpoint, Venue

from .conftest import ADMIN, INSPECTOR, ZERO_KEY, make_site


async def test_venue_types_are_the_nine_small_places(insp):
    async with insp.client(INSPECTOR) as http:
        r = await http.get("/v1/venue-types")
    assert r.status_code == 200
    codes = {t["code"] for t in r.json()}
    assert len(codes) == 9 and {"restaurant", "internet_cafe", "hotel"} <= codes


async def test_register_venue_resolves_grid_and_applies_class_rule(insp, city):
    site = await make_site(insp, city, cycle_days=30)
    assert site.venue["grid_code"] == city.grid_west
    assert site.venue["community_code"] == city.community
    assert site.venue["street_code"] == city.street
    assert site.venue["grid_class"] == "key"
    cp = site.checkpoint
    assert cp["base_cycle_days"] == 30 and cp["effective_cycle_days"] == 22  # key x0.75
    assert cp["colour"] == "green" and cp["secure_tag"] is False
    east = await make_site(insp, city, grid_code=city.grid_east, cycle_days=30)
    assert east.checkpoint["effective_cycle_days"] == 30  # regular
    other = await make_site(insp, city, grid_code=city.other_grid, cycle_days=30)
    assert other.checkpoint["effective_cycle_days"] == 15  # enhanced x0.5


async def test_venue_outside_grid_and_unknown_type_are_422(insp):
    async with insp.client(ADMIN) as http:
        body = {"name": "x", "venue_type": "restaurant", "address": "y", "location": [100.0, 30.0]}
        r = await http.post("/v1/venues", json=body)
        assert r.status_code == 422
        assert r.json()["type"] == "urn:gridgov:problem:outside-grid"
        r = await http.post("/v1/venues", json=body | {"venue_type": "spaceport"})
        assert r.json()["type"] == "urn:gridgov:problem:unknown-venue-type"


async def test_grid_outage_is_503_and_writes_nothing_then_retry_succeeds(insp, city):
    good = insp.ctx.settings.grid_svc_url
    insp.ctx.settings.grid_svc_url = f"http://127.0.0.1:{free_port()}"
    body = {
        "name": "网吧",
        "venue_type": "internet_cafe",
        "address": "z",
        "location": list(city.point_in(city.grid_east)),
    }
    async with insp.client(ADMIN) as http:
        r = await http.post("/v1/venues", json=body)
        assert r.status_code == 503, r.text
        assert r.json()["type"] == "urn:gridgov:problem:grid-svc-unavailable"
        async with insp.ctx.db.sessions() as s:
            assert await s.scalar(select(func.count()).select_from(Venue)) == 0
        insp.ctx.settings.grid_svc_url = good
        r = await http.post("/v1/venues", json=body)
        assert r.status_code == 201, r.text
        assert r.json()["grid_code"] == city.grid_east


async def test_move_venue_re_resolves_grid_and_moves_checkpoints(insp, city):
    site = await make_site(insp, city, cycle_days=30)
    new = city.point_in(city.grid_east)
    async with insp.client(ADMIN) as http:
        r = await http.patch(f"/v1/venues/{site.venue['id']}", json={"location": list(new)})
        assert r.status_code == 200, r.text
        assert r.json()["grid_code"] == city.grid_east
        cp = (await http.get(f"/v1/checkpoints/{site.checkpoint['id']}")).json()
    assert cp["grid_code"] == city.grid_east
    assert cp["location"] == list(new)
    assert cp["effective_cycle_days"] == 30


async def test_tag_uid_unique_and_tag_key_encrypted_never_returned(insp, city):
    site = await make_site(insp, city, tag_uid="041E3C8A2D6B80", tag_key=ZERO_KEY)
    assert site.checkpoint["secure_tag"] is True
    assert "tag_key" not in str(site.checkpoint).replace("secure_tag", "")
    async with insp.ctx.db.sessions() as s:
        blob = await s.scalar(select(Checkpoint.tag_key_enc))
    assert blob is not None and bytes(16) not in blob and len(blob) == 12 + 16 + 16
    async with insp.client(ADMIN) as http:
        r = await http.post(
            f"/v1/venues/{site.venue['id']}/checkpoints",
            json={"name": "dup", "tag_uid": "041e3c8a2d6b80"},
        )
        assert r.status_code == 409
        assert r.json()["type"] == "urn:gridgov:problem:tag-in-use"
        listing = (await http.get("/v1/checkpoints")).text
    assert 'tag_key"' not in listing and ZERO_KEY not in listing


async def test_template_edit_creates_a_new_version(insp):
    async with insp.client(ADMIN) as http:
        v1 = (await http.get("/v1/templates/shop")).json()
        assert v1["version"] == 1
        items = v1["items"] + [{"code": "shutters", "title": "卷帘门可开启", "severity": "general"}]
        r = await http.put("/v1/templates/shop", json={"items": items, "note": "add shutters"})
        assert r.status_code == 200, r.text
        assert r.json()["version"] == 2
        assert (await http.get("/v1/templates/shop?version=1")).json()["items"] == v1["items"]
        assert len((await http.get("/v1/templates/shop")).json()["items"]) == len(items)
    async with insp.client(INSPECTOR) as http:
        r = await http.put("/v1/templates/shop", json={"items": items})
        assert r.status_code == 403


async def test_grid_class_change_in_grid_svc_regrades_checkpoints(insp, grid, city):
    site = await make_site(insp, city, grid_code=city.grid_east, cycle_days=30)
    assert site.checkpoint["effective_cycle_days"] == 30
    async with grid.client(ADMIN) as http:
        r = await http.patch(f"/v1/regions/{city.grid_east}", json={"grid_class": "enhanced"})
        assert r.status_code == 200, r.text

    async def regraded():
        async with insp.client(ADMIN) as http:
            cp = (await http.get(f"/v1/checkpoints/{site.checkpoint['id']}")).json()
        return cp["effective_cycle_days"] == 15

    from gridgov_common.testing import eventually

    await eventually(regraded, timeout=30)


async def test_venues_follow_a_grid_split(insp, grid, city):
    from gridgov_common.testing import eventually
    from gridgov_grid.fixtures import box

    # a venue in the north half of the west grid
    north = (113.905, 22.565)
    async with insp.client(ADMIN) as http:
        r = await http.post(
            "/v1/venues",
            json={
                "name": "北面小店",
                "venue_type": "shop",
                "address": "北路",
                "location": list(north),
            },
        )
        assert r.status_code == 201
        venue = r.json()
        cp = (
            await http.post(
                f"/v1/venues/{venue['id']}/checkpoints",
                json={"name": "门口", "tag_uid": "04A1A2A3A4A5A6", "cycle_days": 30},
            )
        ).json()
    assert venue["grid_code"] == city.grid_west and cp["effective_cycle_days"] == 22
    async with grid.client(ADMIN) as http:
        r = await http.post(
            f"/v1/regions/{city.grid_west}/split",
            json={
                "parts": [
                    {
                        "name": "南",
                        "boundary": box(113.90, 22.55, 113.91, 22.56),
                        "grid_class": "key",
                    },
                    {
                        "name": "北",
                        "boundary": box(113.90, 22.56, 113.91, 22.57),
                        "grid_class": "enhanced",
                    },
                ]
            },
        )
        assert r.status_code == 201, r.text
        new_north = next(p["code"] for p in r.json() if p["name"] == "北")

    async def moved():
        async with insp.client(ADMIN) as http:
            v = (await http.get(f"/v1/venues/{venue['id']}")).json()
            c = (await http.get(f"/v1/checkpoints/{cp['id']}")).json()
        return (v, c) if v["grid_code"] == new_north else None

    v, c = await eventually(moved, timeout=30)
    assert v["grid_class"] == "enhanced" and v["community_code"] == city.community
    assert c["grid_code"] == new_north and c["effective_cycle_days"] == 15
