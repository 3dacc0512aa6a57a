from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select

from gridgov_common.testing import RunningService, token_for
from gridgov_grid.fixtures import SmallCity, create_small_city
from gridgov_population.citizen_id import check_char

GRID_ADMIN = token_for(roles=["admin"], scopes=["440306"])
ADMIN = token_for(roles=["admin"], scopes=["440306"], subject="admin-1")
OFFICER = token_for(roles=["population_officer"], scopes=["440306"], subject="officer-1")
VIEWER = token_for(roles=["viewer"], scopes=["440306"], subject="viewer-1")
REVIEWER = token_for(roles=["reviewer"], scopes=["440306"], subject="reviewer-1")
OTHER_STREET = token_for(roles=["population_officer"], scopes=["440306002"], subject="officer-2")


def make_id(region: str = "420102", birth: str = "19900101", seq: int = 123) -> str:
    first17 = f"{region}{birth}{seq:03d}"
    return first17 + check_char(first17)


@pytest.fixture
async def grid(launch) -> AsyncIterator[RunningService]:
    async with launch("grid") as svc:
        yield svc


@pytest.fixture
async def city(grid: RunningService) -> SmallCity:
    async with grid.client(GRID_ADMIN) as http:
        return await create_small_city(http)


@pytest.fixture
async def pop(launch, grid: RunningService, city: SmallCity) -> AsyncIterator[RunningService]:
    async with launch("population", grid_svc_url=grid.url) as svc:
        yield svc


async def outbox_events(svc: RunningService, type_suffix: str = "") -> list[dict[str, Any]]:
    t = svc.ctx.tables.outbox
    async with svc.ctx.db.sessions() as session:
        rows = (await session.execute(select(t.c.body).order_by(t.c.id))).scalars().all()
    events = [json.loads(b) for b in rows]
    return [e for e in events if e["type"].endswith(type_suffix)]


async def outbox_bodies(svc: RunningService) -> list[str]:
    t = svc.ctx.tables.outbox
    async with svc.ctx.db.sessions() as session:
        return list((await session.execute(select(t.c.body))).scalars().all())


def person_body(region: str = "440306001", **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "region_code": region,
        "name": "张伟",
        "id_number": make_id(),
        "sex": "male",
        "birth_date": date(1990, 1, 1).isoformat(),
        "phone": "13812345678",
        "household_region_code": "420102",
        "household_address": "湖北省武汉市江岸区某路1号",
    }
    body.update(kw)
    return body


def house_body(city: SmallCity, grid_code: str | None = None, **kw: Any) -> dict[str, Any]:
    lon, lat = city.point_in(grid_code or city.grid_west)
    body: dict[str, Any] = {
        "community_code": city.community,
        "address": "海裕社区 1 栋",
        "lon": lon,
        "lat": lat,
        "owner_name": "李四",
        "owner_id_number": make_id("440306", "19700505", 222),
        "owner_phone": "13900001111",
        "floor_area_m2": 100.0,
        "floor": 3,
        "layout": "3室1厅",
        "use": "residential",
        "rooms": [{"number": "101", "area_m2": 20.0}, {"number": "102", "area_m2": 15.0}],
    }
    body.update(kw)
    return body
