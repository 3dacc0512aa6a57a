"""Green/yellow/red, the lease-protected miss detector, the map and its aggregates."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from gridgov_common.testing import eventually
from gridgov_inspection import status
from gridgov_inspection.models import Checkpoint, Miss

from .conftest import ADMIN, INSPECTOR, answers_for, make_site, outbox_events, submission, submit


async def _age(svc, checkpoint_id: str, days: int) -> None:
    """Pretend the checkpoint's cycle ran out ``days`` ago (test-only time travel)."""
    async with svc.ctx.db.transaction() as s:
        await s.execute(
            update(Checkpoint)
            .where(Checkpoint.id == checkpoint_id)
            .values(due_at=datetime.now(UTC) - timedelta(days=days))
        )


async def test_miss_detected_once_across_two_replicas(launch, grid, city, tmp_path):
    opts = dict(grid_svc_url=grid.url, photo_dir=str(tmp_path / "p"), sweep_interval_seconds=0.2)
    async with launch("inspection", **opts) as a, launch("inspection", **opts) as b:
        site = await make_site(a, city)
        await _age(a, site.checkpoint["id"], 1)

        async def missed():
            return await outbox_events(b, "checkpoint.missed")

        events = await eventually(missed, timeout=20)
        await asyncio.sleep(1.5)  # several more rounds on both replicas
        events = await outbox_events(a, "checkpoint.missed")
        assert len(events) == 1
        data = events[0]["data"]
        assert data["checkpoint_id"] == site.checkpoint["id"]
        assert data["venue"]["name"] == "老王饭店" and data["cycle_days"] == 22
        async with a.ctx.db.sessions() as s:
            assert await s.scalar(select(func.count()).select_from(Miss)) == 1
        changed = await outbox_events(a, "checkpoint.status_changed")
        assert [(e["data"]["from_colour"], e["data"]["to_colour"]) for e in changed] == [
            ("green", "yellow")
        ]
        # Inspecting it turns it green; the next miss is a new one.
        r = await submit(a, submission(site, await answers_for(a, "restaurant")))
        assert r.status_code == 201, r.text
        assert r.json()["on_time"] is False
        await _age(a, site.checkpoint["id"], 0)

        async def second():
            return len(await outbox_events(a, "checkpoint.missed")) == 2

        await eventually(second, timeout=20)


async def test_concurrent_sweeps_publish_each_miss_once(insp, city):
    sites = [await make_site(insp, city) for _ in range(3)]
    for s in sites:
        await _age(insp, s.checkpoint["id"], 2)
    results = await asyncio.gather(*(status.sweep(insp.ctx) for _ in range(4)))
    assert sum(r["missed"] for r in results) == 3
    assert len(await outbox_events(insp, "checkpoint.missed")) == 3


async def test_map_geojson_filter_and_aggregates(insp, city):
    west_ok = await make_site(insp, city)
    west_late = await make_site(insp, city)
    east_red = await make_site(insp, city, grid_code=city.grid_east)
    other = await make_site(insp, city, grid_code=city.other_grid, venue_type="hotel")
    await _age(insp, west_late.checkpoint["id"], 3)
    r = await submit(
        insp, submission(east_red, await answers_for(insp, "restaurant", {"gas_safe"}))
    )
    assert r.status_code == 201, r.text
    async with insp.client(INSPECTOR) as http:
        fc = (await http.get("/v1/map/checkpoints", params={"region": city.community})).json()
        assert fc["type"] == "FeatureCollection"
        status_of = {f["id"]: f["properties"]["status"] for f in fc["features"]}
        assert status_of == {
            west_ok.checkpoint["id"]: "green",
            west_late.checkpoint["id"]: "yellow",
            east_red.checkpoint["id"]: "red",
        }
        feature = next(f for f in fc["features"] if f["id"] == east_red.checkpoint["id"])
        assert feature["geometry"] == {"type": "Point", "coordinates": list(east_red.point)}
        assert feature["properties"]["colour"] == "#c62828"
        yellow = (await http.get("/v1/map/checkpoints", params={"status": "yellow"})).json()
        assert [f["id"] for f in yellow["features"]] == [west_late.checkpoint["id"]]
        page = (await http.get("/v1/map/checkpoints", params={"limit": 2})).json()
        assert len(page["features"]) == 2 and page["next_cursor"]
        grids = (await http.get("/v1/map/aggregates", params={"level": "grid"})).json()["items"]
        by = {g["code"]: g for g in grids}
        assert by[city.grid_west] | {} == by[city.grid_west]
        assert (by[city.grid_west]["total"], by[city.grid_west]["yellow"]) == (2, 1)
        assert by[city.grid_west]["missed_rate"] == 0.5
        assert by[city.grid_east]["red"] == 1
        assert by[city.grid_east]["open_hazards_by_type"] == [
            {"venue_type": "restaurant", "severity": "major", "count": 1}
        ]
        assert by[city.other_grid]["green"] == 1
        streets = (await http.get("/v1/map/aggregates", params={"level": "street"})).json()
        assert {s["code"]: s["total"] for s in streets["items"]} == {
            city.street: 3,
            city.other_street: 1,
        }
        comm = (
            await http.get(
                "/v1/map/aggregates", params={"level": "community", "region": city.community}
            )
        ).json()
        assert [c["code"] for c in comm["items"]] == [city.community]
    assert other.checkpoint["colour"] == "green"
    # the sweep stores colours and publishes the changes it found
    result = await status.sweep(insp.ctx)
    assert result["colour_changes"] == 1 and result["missed"] == 1
    async with insp.client(ADMIN) as http:
        r = await http.post("/v1/status/sweep")
        assert r.json() == {"overdue": 0, "missed": 0, "colour_changes": 0}
