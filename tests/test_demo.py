"""The demo city is consistent, and it loads into the four services through their APIs."""

from __future__ import annotations

import asyncio
from collections import Counter
from contextlib import AsyncExitStack
from datetime import date, timedelta
from typing import Any

import pytest
import shapely
from shapely.geometry import Point, shape
from sqlalchemy import select, update

from gridgov_common.demo import DemoAlreadyLoaded, load, plan
from gridgov_common.demo.venues import HAZARD_ENDS, VENUE_TYPES
from gridgov_common.testing import eventually, token_for
from gridgov_inspection.models import Checkpoint
from gridgov_population.citizen_id import parse_citizen_id

TODAY = date(2026, 11, 22)
SMALL = 0.06  # 36 venues, ~300 persons: the whole loop, quick enough for CI
ADMIN = token_for(roles=["admin"], scopes=["440306"])


@pytest.fixture(scope="module")
def city():
    return plan(today=TODAY)


def test_plan_is_deterministic(city):
    assert plan(today=TODAY) == city
    assert plan(today=TODAY, scale=SMALL).regions == city.regions  # scale spares the territory


def test_grids_cover_their_communities_without_overlap_and_have_one_leader(city):
    grids = city.grids
    assert len(grids) == 144 and len(city.members) == 3 * 144
    for community in (r for r in city.regions if r["level"] == "community"):
        cells = [shape(g["boundary"]) for g in grids if g["parent_code"] == community["code"]]
        union = shapely.union_all(cells)
        assert union.symmetric_difference(shape(community["boundary"])).area < 1e-12
        assert abs(sum(c.area for c in cells) - union.area) < 1e-12  # no overlaps
    assert all(g["code"].startswith(g["parent_code"]) for g in grids)
    leaders = Counter(m["grid_code"] for m in city.members if m["role"] == "leader")
    assert set(leaders) == {g["code"] for g in grids} and set(leaders.values()) == {1}


def test_every_grid_has_its_front_line_departments(city):
    depts = city.departments
    ids = [d["id"] for d in depts]
    assert len(set(ids)) == len(ids)
    assert all(
        d["parent_id"] is None or ids.index(d["parent_id"]) < ids.index(d["id"]) for d in depts
    )
    for grid in city.grids:
        for kind in ("police_station", "fire_brigade", "community_committee", "flow_station"):
            covering = [
                max(len(p) for p in d["jurisdictions"] if grid["code"].startswith(p))
                for d in depts
                if d["type"] == kind and any(grid["code"].startswith(p) for p in d["jurisdictions"])
            ]
            # notify-svc picks the most specific: there must be exactly one of those.
            assert covering and covering.count(max(covering)) == 1, (grid["code"], kind)


def test_venues_lie_inside_their_grids_with_unique_tags_and_every_kind_of_season(city):
    grids = {g["code"]: shape(g["boundary"]) for g in city.grids}
    assert len(city.venues) == 600
    assert {v["body"]["venue_type"] for v in city.venues} == {t[0] for t in VENUE_TYPES}
    for venue in city.venues:
        assert grids[venue["grid_code"]].contains(Point(venue["body"]["location"]))
    uids = [cp["body"]["tag_uid"] for cp in city.checkpoints]
    assert len(set(uids)) == len(uids)
    scripts = Counter(cp["script"] for cp in city.checkpoints)
    assert set(scripts) == {"pass", "idle", "refused_then_pass", "hazard", "missed"}
    assert all(cp["body"]["cycle_days"] == 1 for cp in city.checkpoints if cp["script"] == "missed")
    ends = Counter(cp["hazard"]["end"] for cp in city.checkpoints if cp["script"] == "hazard")
    assert set(ends) == set(HAZARD_ENDS) and min(ends.values()) >= 5
    # Fixes are reported by a department that acknowledged.
    for cp in city.checkpoints:
        if cp["script"] == "hazard" and cp["hazard"]["end"] not in ("dispatched", "acknowledged"):
            assert cp["hazard"]["fixer"] in cp["hazard"]["acks"]


def test_people_have_valid_ids_homes_inside_their_grids_and_plausible_histories(city):
    assert 4900 <= len(city.persons) <= 5100
    numbers = [p["body"]["id_number"] for p in city.persons]
    numbers += [h["body"]["owner_id_number"] for h in city.houses]
    assert len(set(numbers)) == len(numbers)
    for p in city.persons:
        cid = parse_citizen_id(p["body"]["id_number"], today=TODAY)  # check character included
        assert cid.birth_date.isoformat() == p["body"]["birth_date"]
        assert cid.sex == p["body"]["sex"]
        assert cid.region_code == p["body"]["household_region_code"]
    grids = {g["code"]: shape(g["boundary"]) for g in city.grids}
    houses = {h["key"]: h for h in city.houses}
    for h in city.houses:
        assert grids[h["grid_code"]].contains(Point(h["body"]["lon"], h["body"]["lat"]))
        assert h["grid_code"].startswith(h["body"]["community_code"])
    occupants = Counter(
        p["house"] for p in city.persons if p["registered"] and "departure" not in p
    )
    for h in city.houses:
        per_person = h["body"]["floor_area_m2"] / max(1, occupants[h["key"]])
        assert (per_person < 3) == bool(h.get("overcrowded")), h["key"]
    assert sum(bool(h.get("overcrowded")) for h in city.houses) == 3
    for p in city.persons:
        if "permit" in p:  # six months' continuous registration before the permit
            since = date.fromisoformat(p.get("previous", {}).get("arrival", p["arrival"]))
            assert (date.fromisoformat(p["permit"]["issue_date"]) - since).days >= 181
        if "previous" in p:
            assert p["previous"]["arrival"] < p["arrival"]
            assert houses[p["previous"]["house"]]["key"] != p["house"]


async def test_the_city_loads_through_the_apis_with_its_whole_season(launch, tmp_path):
    city = plan(scale=SMALL)
    async with AsyncExitStack() as stack:
        grid = await stack.enter_async_context(launch("grid"))
        notify = await stack.enter_async_context(launch("notify"))
        inspection = await stack.enter_async_context(
            launch(
                "inspection",
                grid_svc_url=grid.url,
                photo_dir=str(tmp_path / "photos"),
                sweep_enabled=False,
            )
        )
        population = await stack.enter_async_context(launch("population", grid_svc_url=grid.url))
        urls = {
            "grid": grid.url,
            "inspection": inspection.url,
            "population": population.url,
            "notify": notify.url,
        }
        counts = await asyncio.to_thread(load, urls, city=city)

        scripts = Counter(cp["script"] for cp in city.checkpoints)
        ends = Counter(
            cp["hazard"]["end"]
            for cp in city.checkpoints
            if cp["script"] == "hazard"
            for _ in cp["hazard"]["fail"]
        )
        reinspected = sum(
            1 for cp in city.checkpoints if cp.get("hazard", {}).get("end") in ("closed", "open")
        )
        people = city.persons
        assert counts | {"seconds": 0} == {
            "regions": 161,
            "members": 432,
            "departments": len(city.departments),
            "routing_rules": 7,
            "venues": len(city.venues),
            "checkpoints": len(city.checkpoints),
            "secure_tags": sum("tag_key" in cp["body"] for cp in city.checkpoints),
            "inspections": scripts["pass"]
            + scripts["refused_then_pass"]
            + scripts["hazard"]
            + reinspected,
            "refused_scans": scripts["refused_then_pass"],
            "daily_checkpoints_left_uninspected": scripts["missed"],
            **{f"hazards_{state}": n for state, n in ends.items()},
            "houses": len(city.houses),
            "dormitories": 2,
            "dormitories_overcrowded": 1,
            "employers": len(city.employers),
            "persons": len(people),
            "duplicate_candidates": 3,
            "registrations": sum(p["registered"] + ("previous" in p) for p in people),
            "moves": sum("previous" in p for p in people),
            "departures": sum("departure" in p for p in people),
            "employees": sum("job" in p for p in people),
            "permits": sum("permit" in p for p in people),
            "points_applications": sum("points" in p for p in people),
            "seconds": 0,
        }

        # Read back: the grid has its leaders, hazards are in every state, colours agree.
        async with grid.client(ADMIN) as http:
            assert (await http.get("/v1/gaps/leaders", params={"under": "440306"})).json() == []
        async with inspection.client(ADMIN) as http:
            hazards = (await http.get("/v1/hazards", params={"limit": 1000})).json()["items"]
            assert Counter(h["state"] for h in hazards) == ends
            assert set(ends) == set(HAZARD_ENDS)
            reworked = [h for h in hazards if h["state"] == "open"]
            assert reworked and all(h["rework_count"] == 1 for h in reworked)
            closed = (await http.get(f"/v1/hazards/{_closed(hazards)}")).json()
            history = closed["history"]
            assert [s["to_state"] for s in history if s["kind"] == "state"] == [
                "open",
                "dispatched",
                "acknowledged",
                "rectification_reported",
                "closed",
            ]
            agg = (await http.get("/v1/map/aggregates", params={"level": "street"})).json()
            red = sum(a["red"] for a in agg["items"])
            assert red == len({h["checkpoint_id"] for h in hazards if h["state"] != "closed"})
            assert sum(a["yellow"] for a in agg["items"]) == 0  # nothing is due yet

        # A day later (test-only time travel), the daily checkpoints nobody inspected are
        # missed: yellow, and each reaches its community committee.
        async with inspection.ctx.db.transaction() as s:
            for cp_id, due in (await s.execute(select(Checkpoint.id, Checkpoint.due_at))).all():
                later = due - timedelta(days=1, minutes=1)
                await s.execute(
                    update(Checkpoint).where(Checkpoint.id == cp_id).values(due_at=later)
                )
        async with inspection.client(ADMIN) as http:
            swept = (await http.post("/v1/status/sweep")).json()
            assert swept["missed"] == scripts["missed"]
            yellow = (await http.get("/v1/map/checkpoints", params={"status": "yellow"})).json()
            assert len(yellow["features"]) == scripts["missed"]

        async def missed_cases():
            async with notify.client(ADMIN) as http:
                cases = (await http.get("/v1/cases", params={"limit": 500})).json()["items"]
            found = [c for c in cases if c["source_event_type"].endswith("checkpoint.missed")]
            return found if len(found) == scripts["missed"] else None

        for case in await eventually(missed_cases, timeout=30):
            (d,) = case["dispatches"]
            assert d["department_type"] == "community_committee"
            assert d["department_id"] == f"committee-{case['grid_code'][:12]}"

        # People: dormitories, duplicates waiting for review, a ranking per town.
        async with population.client(ADMIN) as http:
            houses = await _all(http, "/v1/houses", region="440306")
            assert len(houses) == len(city.houses)
            crowded = [h for h in houses if h["overcrowded_units"]]
            assert [h["use"] for h in crowded] == ["collective_dormitory"]
            # Floating residents (registered here, household elsewhere) per grid add up.
            floating = sum(
                1
                for p in people
                if p["registered"]
                and "departure" not in p
                and p["body"]["household_region_code"] != "440306"
            )

            async def staffed():
                r = await http.get("/v1/staffing", params={"region": "440306"})
                return sum(g["floating_residents"] for g in r.json()["grids"]) == floating

            await eventually(staffed, timeout=30)
            dups = (await http.get("/v1/duplicates")).json()["items"]
            assert len(dups) == 3
            app = next(p for p in people if "points" in p)
            ranking = (
                await http.get(
                    "/v1/points/rankings",
                    params={
                        "year": city.today.year,
                        "town_code": app["grid_code"][:9],
                        "purpose": app["points"]["purpose"],
                    },
                )
            ).json()
            assert ranking["entries"] and ranking["quota"] > 0

        # A second load finds the city there and adds nothing.
        with pytest.raises(DemoAlreadyLoaded):
            await asyncio.to_thread(load, urls, city=city)


def _closed(hazards: list[dict[str, Any]]) -> str:
    return next(h["id"] for h in hazards if h["state"] == "closed" and h["outcome"] == "confirmed")


async def _all(http, path: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = params | {"limit": 200} | ({"cursor": cursor} if cursor else {})
        page = (await http.get(path, params=query)).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items
