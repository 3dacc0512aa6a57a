"""The services wired together: a grid-svc change reaches notify-svc's read model via grid.v1."""

from __future__ import annotations

from gridgov_common.testing import eventually, token_for

ADMIN = token_for(roles=["admin"], scopes=["440306"])


async def test_region_created_in_grid_svc_reaches_notify_read_model(launch):
    async with launch("grid") as grid, launch("notify") as notify:
        async with grid.client(ADMIN) as http:
            r = await http.post(
                "/v1/regions", json={"code": "440306", "level": "district", "name": "宝安区"}
            )
            assert r.status_code == 201, r.text

        async def known():
            async with notify.client(ADMIN) as http:
                r = await http.get("/v1/known-regions/440306")
                return r.json() if r.status_code == 200 else None

        region = await eventually(known, timeout=30)
        assert region["name"] == "宝安区"
        assert region["level"] == "district"
