"""grid-svc through its HTTP API: hierarchy, geometry rules, members, lookup, import/export."""

from __future__ import annotations

import json
from itertools import pairwise

from aiokafka import AIOKafkaConsumer

from gridgov_common.testing import eventually, token_for
from gridgov_grid.fixtures import box
from gridgov_grid.geo import wgs84_to_gcj02
from gridgov_grid.schemas import BatchLocateOut, LocateOut

from .conftest import ADMIN


def distance_m(lon1, lat1, lon2, lat2) -> float:
    from math import asin, cos, radians, sin, sqrt

    dlat, dlon = radians(lat2 - lat1), radians(lon2 - lon1)
    a = sin(dlat / 2) ** 2 + cos(radians(lat1)) * cos(radians(lat2)) * sin(dlon / 2) ** 2
    return 2 * 6_371_008.8 * asin(sqrt(a))


def problem_type(response) -> str:
    assert response.headers["content-type"] == "application/problem+json", response.text
    return response.json()["type"].rsplit(":", 1)[-1]


async def test_codes_extend_parents_and_are_allocated_never_reused(grid, city):
    async with grid.client(ADMIN) as http:
        r = await http.post(
            "/v1/regions",
            json={"code": "440307001", "level": "street", "parent_code": "440306", "name": "x"},
        )
        assert r.status_code == 422 and problem_type(r) == "invalid-code"
        assert "does not extend parent" in r.json()["detail"]

        r = await http.post(
            "/v1/regions", json={"level": "grid", "name": "new", "parent_code": city.community}
        )
        assert r.status_code == 201, r.text
        allocated = r.json()["code"]
        assert allocated == "440306001001003"
        assert [a["code"] for a in r.json()["ancestors"]] == ["440306", "440306001", "440306001001"]
        assert (await http.post(f"/v1/regions/{allocated}/retire", json={})).status_code == 200
        again = await http.post(
            "/v1/regions", json={"level": "grid", "name": "next", "parent_code": city.community}
        )
        assert again.json()["code"] == "440306001001004"  # the retired code stays taken
        reuse = await http.post(
            "/v1/regions",
            json={
                "code": allocated,
                "level": "grid",
                "name": "reuse",
                "parent_code": city.community,
            },
        )
        assert reuse.status_code == 409 and "never reused" in reuse.json()["detail"]


async def test_invalid_geometry_is_rejected_with_where(grid, city):
    bowtie = {
        "type": "Polygon",
        "coordinates": [
            [
                [113.900, 22.550],
                [113.905, 22.555],
                [113.905, 22.550],
                [113.900, 22.555],
                [113.900, 22.550],
            ]
        ],
    }
    unclosed = {
        "type": "Polygon",
        "coordinates": [[[113.90, 22.55], [113.901, 22.55], [113.901, 22.551], [113.90, 22.551]]],
    }
    async with grid.client(ADMIN) as http:
        for geometry in (bowtie, unclosed):
            r = await http.post(
                f"/v1/regions/{city.grid_west}/split",
                json={
                    "parts": [
                        {"name": "a", "boundary": geometry},
                        {"name": "b", "boundary": geometry},
                    ]
                },
            )
            assert r.status_code == 422, r.text
            assert problem_type(r) == "invalid-geometry"
            assert r.json()["location"] is not None
        r = await http.patch(f"/v1/regions/{city.grid_west}", json={"boundary": bowtie})
        assert r.json()["location"] == [113.9025, 22.5525]


async def test_clockwise_ring_is_fixed_not_rejected(grid, city):
    west, south, east, north = 113.90, 22.55, 113.905, 22.56
    clockwise = {
        "type": "Polygon",
        "coordinates": [
            [[west, south], [west, north], [east, north], [east, south], [west, south]]
        ],
    }
    async with grid.client(ADMIN) as http:
        r = await http.patch(f"/v1/regions/{city.grid_west}", json={"boundary": clockwise})
        assert r.status_code == 200, r.text
        ring = r.json()["boundary"]["coordinates"][0]
        signed = sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in pairwise(ring))
        assert signed > 0  # counter-clockwise exterior, RFC 7946


async def test_grid_outside_its_community_and_overlapping_siblings_are_refused(grid, city):
    async with grid.client(ADMIN) as http:
        sticking_out = box(113.905, 22.55, 113.93, 22.57)
        r = await http.post(
            "/v1/regions",
            json={
                "level": "grid",
                "name": "big",
                "parent_code": city.community,
                "boundary": sticking_out,
            },
        )
        assert r.status_code == 422 and problem_type(r) == "outside-parent"
        assert r.json()["outside"]["type"] in ("Polygon", "MultiPolygon")

        overlapping = box(113.905, 22.55, 113.915, 22.56)
        r = await http.patch(f"/v1/regions/{city.grid_east}", json={"boundary": overlapping})
        assert r.status_code == 409 and problem_type(r) == "overlaps-sibling"
        assert r.json()["sibling_code"] == city.grid_west

        # Within the tolerance (a sliver well under a metre) is accepted.
        nudged = box(113.909999, 22.55, 113.92, 22.57)
        r = await http.patch(f"/v1/regions/{city.grid_east}", json={"boundary": nudged})
        assert r.status_code == 200, r.text


async def test_coverage_gap_report(grid, city):
    async with grid.client(ADMIN) as http:
        full = (await http.get(f"/v1/regions/{city.community}/coverage")).json()
        assert full["features"] == [] and full["properties"]["covered_share"] == 1.0
        await http.patch(
            f"/v1/regions/{city.grid_east}", json={"boundary": box(113.91, 22.55, 113.92, 22.56)}
        )
        gap = (await http.get(f"/v1/regions/{city.community}/coverage")).json()
    (feature,) = gap["features"]
    assert 1_000_000 < feature["properties"]["area_m2"] < 1_200_000  # ~1.03 km x 1.11 km
    assert 0.7 < gap["properties"]["covered_share"] < 0.8


async def test_one_active_leader_per_grid_and_leader_gaps(grid, city):
    async with grid.client(ADMIN) as http:
        gaps = (await http.get("/v1/gaps/leaders", params={"under": "440306"})).json()
        assert {g["code"] for g in gaps} == {city.grid_west, city.grid_east, city.other_grid}
        first = await http.post(
            f"/v1/grids/{city.grid_west}/members",
            json={
                "name": "王芳",
                "role": "leader",
                "valid_from": "2026-01-01",
                "phone": "13800000000",
            },
        )
        assert first.status_code == 201, first.text
        second = await http.post(
            f"/v1/grids/{city.grid_west}/members",
            json={"name": "李强", "role": "leader", "valid_from": "2026-02-01"},
        )
        assert second.status_code == 409 and problem_type(second) == "leader-exists"
        handover = await http.post(
            f"/v1/grids/{city.grid_west}/members",
            json={
                "name": "李强",
                "role": "leader",
                "valid_from": "2026-02-01",
                "replaces": first.json()["id"],
            },
        )
        assert handover.status_code == 201, handover.text
        officer = await http.post(
            f"/v1/grids/{city.grid_west}/members",
            json={"name": "赵警官", "role": "police_officer", "valid_from": "2026-01-01"},
        )
        assert officer.status_code == 201
        active = (await http.get(f"/v1/grids/{city.grid_west}/members")).json()
        assert sorted(m["name"] for m in active) == ["李强", "赵警官"]
        gaps = (await http.get("/v1/gaps/leaders", params={"under": "440306"})).json()
        assert {g["code"] for g in gaps} == {city.grid_east, city.other_grid}
        bad = await http.post(
            f"/v1/grids/{city.grid_west}/members",
            json={"name": "x", "role": "mayor", "valid_from": "2026-01-01"},
        )
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "body.role"


async def test_locate_answers_grid_and_ancestors_and_edges_deterministically(grid, city):
    async with grid.client(token_for(roles=["inspector"], scopes=["440306001"])) as http:
        lon, lat = city.point_in(city.grid_east)
        r = await http.get("/v1/locate", params={"lon": lon, "lat": lat})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["grid"] == {
            "code": city.grid_east,
            "name": "海裕第二网格",
            "level": "grid",
            "grid_class": "regular",
        }
        assert [a["level"] for a in body["ancestors"]] == ["district", "street", "community"]
        for _ in range(5):  # on the shared edge: always the lower code
            edge = await http.get("/v1/locate", params={"lon": 113.91, "lat": 22.56})
            assert edge.json()["grid"]["code"] == city.grid_west
        outside = await http.get("/v1/locate", params={"lon": 100.0, "lat": 30.0})
        assert outside.status_code == 404 and problem_type(outside) == "outside-grid"
        bad = await http.get("/v1/locate", params={"lon": 200, "lat": 22.5})
        assert bad.status_code == 422 and problem_type(bad) == "coordinates-out-of-range"


async def test_locate_answer_has_the_schema_and_follows_renames(grid, city):
    """Answers are encoded once per grid and kept: a rename of the grid or an ancestor shows."""
    lon, lat = city.point_in(city.grid_west)
    async with grid.client(ADMIN) as http:
        first = await http.get("/v1/locate", params={"lon": lon, "lat": lat})
        assert first.headers["content-type"] == "application/json"
        # Served by its own route class, still through the service's middleware.
        assert first.headers["cache-control"] == "no-store" and first.headers["x-request-id"]
        assert LocateOut.model_validate_json(first.content).model_dump(mode="json") == first.json()
        assert first.json()["point"] == [lon, lat]
        for code, name in ((city.community, "海裕新社区"), (city.grid_west, "海裕新网格")):
            r = await http.patch(f"/v1/regions/{code}", json={"name": name})
            assert r.status_code == 200, r.text
        again = (await http.get("/v1/locate", params={"lon": lon, "lat": lat})).json()
        assert again["grid"]["name"] == "海裕新网格"
        assert again["ancestors"][-1] == {
            "code": city.community,
            "name": "海裕新社区",
            "level": "community",
        }
        batch = await http.post("/v1/locate/batch", json={"points": [[lon, lat], [0.0, 0.0]]})
        assert BatchLocateOut.model_validate_json(batch.content).model_dump(mode="json") == {
            "results": [again, {"point": [0.0, 0.0], "grid": None, "ancestors": []}],
            "outside": 1,
        }


async def test_locate_query_errors_are_problems(grid, city):
    async with grid.client(ADMIN) as http:
        r = await http.get("/v1/locate", params={"lon": "east", "crs": "wgs99"})
        assert r.status_code == 422 and problem_type(r) == "validation-error"
        fields = {e["field"]: e["code"] for e in r.json()["errors"]}
        assert fields == {
            "query.lon": "float_parsing",
            "query.lat": "missing",
            "query.crs": "literal_error",
        }
    async with grid.client(None) as anonymous:  # the token is checked before the query
        r = await anonymous.get("/v1/locate", params={"lon": "east"})
        assert r.status_code == 401 and problem_type(r) == "unauthorized"
        basic = {"Authorization": f"Basic {ADMIN}"}
        r = await anonymous.get("/v1/locate", params={"lon": 113.9, "lat": 22.5}, headers=basic)
        assert r.status_code == 401 and problem_type(r) == "unauthorized"


async def test_gcj02_input_is_converted_within_two_metres(grid, city):
    wgs = (113.90995, 22.5600)  # 5 m west of the shared edge, in the west grid
    gcj = wgs84_to_gcj02(*wgs)  # ~500 m off: would land in the east grid if not converted
    async with grid.client(ADMIN) as http:
        r = await http.get("/v1/locate", params={"lon": gcj[0], "lat": gcj[1], "crs": "gcj02"})
    assert r.json()["grid"]["code"] == city.grid_west
    assert distance_m(*r.json()["point"], *wgs) < 2.0


async def test_batch_locate_and_its_limit(grid, city):
    points = [city.point_in(city.grid_west), city.point_in(city.other_grid), (0.0, 0.0)] * 1000
    async with grid.client(ADMIN) as http:
        r = await http.post("/v1/locate/batch", json={"points": points})
        assert r.status_code == 200
        results = r.json()["results"]
        assert [x["grid"]["code"] if x["grid"] else None for x in results[:3]] == [
            city.grid_west,
            city.other_grid,
            None,
        ]
        assert r.json()["outside"] == 1000
        too_many = await http.post("/v1/locate/batch", json={"points": [[113.9, 22.56]] * 10_001})
        assert too_many.status_code == 422 and problem_type(too_many) == "batch-too-large"


async def test_import_is_all_or_nothing_with_per_feature_errors_and_export(grid, city):
    good = {
        "type": "Feature",
        "geometry": box(113.94, 22.55, 113.95, 22.56),
        "properties": {
            "code": "440306003",
            "level": "street",
            "parent_code": city.district,
            "name": "新街道",
        },
    }
    child = {
        "type": "Feature",
        "geometry": box(113.94, 22.55, 113.945, 22.56),
        "properties": {
            "level": "community",
            "parent_code": "440306003",
            "name": "新社区",
            "code": "440306003001",
        },
    }
    bad_code = {
        "type": "Feature",
        "geometry": None,
        "properties": {
            "code": "999999001",
            "level": "street",
            "parent_code": "440306",
            "name": "错",
        },
    }
    async with grid.client(ADMIN) as http:
        r = await http.post(
            "/v1/import", json={"type": "FeatureCollection", "features": [good, bad_code, child]}
        )
        assert r.status_code == 422 and problem_type(r) == "import-rejected"
        assert [e["index"] for e in r.json()["errors"]] == [1]
        assert (await http.get("/v1/regions/440306003")).status_code == 404
        r = await http.post(
            "/v1/import", json={"type": "FeatureCollection", "features": [child, good]}
        )
        assert r.status_code == 200, r.text
        assert r.json()["imported"] == 2
        exported = (await http.get(f"/v1/regions/{city.district}/export")).json()
    codes = [f["properties"]["code"] for f in exported["features"]]
    assert codes[0] == "440306" and codes[-2:] == ["440306003", "440306003001"]
    assert len(codes) == 10
    assert exported["features"][-1]["geometry"]["type"] == "Polygon"


async def test_writes_need_grid_admin_inside_scope(grid, city):
    body = {"level": "grid", "name": "x", "parent_code": city.other_community}
    async with grid.client(token_for(roles=["inspector"])) as http:
        assert (await http.post("/v1/regions", json=body)).status_code == 403
    async with grid.client(token_for(roles=["grid_admin"], scopes=["440306001"])) as http:
        r = await http.post("/v1/regions", json=body)
        assert r.status_code == 403 and problem_type(r) == "out-of-scope"
        mine = await http.post("/v1/regions", json={**body, "parent_code": city.community})
        assert mine.status_code == 201
    async with grid.client() as http:
        assert (await http.get("/v1/locate", params={"lon": 113.9, "lat": 22.5})).status_code == 401


async def test_split_retires_old_grid_and_new_points_resolve_to_successors(grid, city):
    async with grid.client(ADMIN) as http:
        r = await http.post(
            f"/v1/regions/{city.grid_east}/split",
            json={
                "parts": [
                    {"name": "南", "boundary": box(113.91, 22.55, 113.92, 22.56)},
                    {"name": "北", "boundary": box(113.91, 22.56, 113.92, 22.57)},
                ]
            },
        )
        assert r.status_code == 201, r.text
        south, north = (p["code"] for p in r.json())
        old = (await http.get(f"/v1/regions/{city.grid_east}")).json()
        assert old["status"] == "retired" and old["replaced_by"] == [south, north]
        located = await http.get("/v1/locate", params={"lon": 113.915, "lat": 22.565})
        assert located.json()["grid"]["code"] == north


async def test_changes_through_one_replica_are_seen_by_another(launch, city, grid):
    async with launch("grid") as replica, replica.client(ADMIN) as other:
        lon, lat = 113.915, 22.565
        assert (await other.get("/v1/locate", params={"lon": lon, "lat": lat})).json()["grid"][
            "code"
        ] == city.grid_east
        async with grid.client(ADMIN) as http:
            r = await http.post(
                f"/v1/regions/{city.grid_east}/split",
                json={
                    "parts": [
                        {"name": "南", "boundary": box(113.91, 22.55, 113.92, 22.56)},
                        {"name": "北", "boundary": box(113.91, 22.56, 113.92, 22.57)},
                    ]
                },
            )
            north = r.json()[1]["code"]

        async def moved():
            r = await other.get("/v1/locate", params={"lon": lon, "lat": lat})
            return r.status_code == 200 and r.json()["grid"]["code"] == north

        await eventually(moved, timeout=20)


async def test_updates_publish_full_state_on_grid_v1(grid, city, kafka_broker):
    async with grid.client(ADMIN) as http:
        r = await http.patch(f"/v1/regions/{city.grid_west}", json={"grid_class": "enhanced"})
        assert r.status_code == 200
    consumer = AIOKafkaConsumer(
        "grid.v1",
        bootstrap_servers=kafka_broker.bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    found = []
    try:

        async def updated():
            batch = await consumer.getmany(timeout_ms=300)
            for msgs in batch.values():
                for m in msgs:
                    evt = json.loads(m.value)
                    if (
                        evt["type"] == "gridgov.grid.region.updated"
                        and evt["data"]["changed"] == ["grid_class"]
                        and m.key == city.grid_west.encode()
                    ):
                        found.append(evt)
            return found

        await eventually(updated, timeout=20)
    finally:
        await consumer.stop()
    data = found[-1]["data"]
    assert data["grid_class"] == "enhanced" and data["changed"] == ["grid_class"]
    assert data["geometry"]["type"] == "Polygon"
    assert [a["code"] for a in data["ancestors"]] == ["440306", "440306001", "440306001001"]
    assert found[-1]["gridcode"] == city.grid_west
