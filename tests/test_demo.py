"""The demo city is consistent and loads through the public APIs."""

from __future__ import annotations

import asyncio

import shapely
from shapely.geometry import shape

from gridgov_common.demo import plan
from gridgov_common.testing import token_for


def test_demo_grids_cover_their_communities_without_overlap():
    regions, members = plan()
    by_code = {r["code"]: r for r in regions}
    grids = [r for r in regions if r["level"] == "grid"]
    assert len(grids) == 144 and len(members) == 3 * 144
    for community in (r for r in regions if r["level"] == "community"):
        cells = [shape(g["boundary"]) for g in grids if g["parent_code"] == community["code"]]
        union = shapely.union_all(cells)
        assert union.symmetric_difference(shape(community["boundary"])).area < 1e-12
        assert abs(sum(c.area for c in cells) - union.area) < 1e-12  # no overlaps
    assert all(g["code"].startswith(g["parent_code"]) for g in grids)
    assert plan() == (regions, members)  # deterministic
    assert by_code["440306"]["level"] == "district"


async def test_demo_loads_into_grid_svc(launch):
    from gridgov_common.demo import load

    async with launch("grid") as grid:
        counts = await asyncio.to_thread(load, {"grid": grid.url})
        assert counts == {"regions": 161, "members": 432}
        async with grid.client(token_for(roles=["viewer"])) as http:
            gaps = (await http.get("/v1/gaps/leaders", params={"under": "440306"})).json()
            located = (await http.get("/v1/locate", params={"lon": 113.87, "lat": 22.56})).json()
    assert gaps == []
    assert located["grid"]["code"].startswith("440306001")
