from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from gridgov_common.demo.photos import unique_jpeg
from gridgov_common.testing import RunningService, token_for
from gridgov_grid.fixtures import SmallCity, create_small_city

ADMIN = token_for(roles=["admin"], scopes=["440306"])
INSPECTOR = token_for(roles=["inspector"], scopes=["440306"], subject="inspector-li")
INSPECTOR2 = token_for(roles=["inspector"], scopes=["440306"], subject="inspector-wang")
DEPARTMENT = token_for(roles=["department"], scopes=["440306"], subject="fire-dept")
SUN_UID = "041E3C8A2D6B80"
ZERO_KEY = "00" * 16


def jpeg(size: int = 2000) -> bytes:
    """A fresh JPEG-structured file (unique bytes, so a unique SHA-256)."""
    return unique_jpeg(size)


@pytest.fixture
async def grid(launch) -> AsyncIterator[RunningService]:
    async with launch("grid") as svc:
        yield svc


@pytest.fixture
async def city(grid: RunningService) -> SmallCity:
    async with grid.client(ADMIN) as http:
        return await create_small_city(http)


@pytest.fixture
async def insp(launch, grid, city, tmp_path) -> AsyncIterator[RunningService]:
    async with launch(
        "inspection",
        grid_svc_url=grid.url,
        photo_dir=str(tmp_path / "photos"),
        sweep_enabled=False,
    ) as svc:
        yield svc


@dataclass
class Site:
    venue: dict[str, Any]
    checkpoint: dict[str, Any]
    point: tuple[float, float]


async def make_site(
    svc: RunningService,
    city: SmallCity,
    *,
    grid_code: str | None = None,
    venue_type: str = "restaurant",
    tag_uid: str | None = None,
    tag_key: str | None = None,
    cycle_days: int = 30,
    inspector: str | None = "inspector-li",
) -> Site:
    point = city.point_in(grid_code or city.grid_west)
    async with svc.client(ADMIN) as http:
        r = await http.post(
            "/v1/venues",
            json={
                "name": "老王饭店",
                "venue_type": venue_type,
                "address": "海裕路1号",
                "location": list(point),
                "floor_area_m2": 80,
                "operator_name": "王老板",
                "contact_phone": "13800000000",
                "licence_no": "91440300MA5X",
            },
        )
        assert r.status_code == 201, r.text
        venue = r.json()
        body: dict[str, Any] = {
            "name": "厨房",
            "tag_uid": tag_uid or os.urandom(7).hex().upper(),
            "cycle_days": cycle_days,
            "assigned_inspector": inspector,
        }
        if tag_key:
            body["tag_key"] = tag_key
        r = await http.post(f"/v1/venues/{venue['id']}/checkpoints", json=body)
        assert r.status_code == 201, r.text
    return Site(venue, r.json(), point)


async def answers_for(svc: RunningService, venue_type: str, fail: set[str] = frozenset()):
    async with svc.client(ADMIN) as http:
        tpl = (await http.get(f"/v1/templates/{venue_type}")).json()
    return [
        {
            "item_code": i["code"],
            "result": "fail" if i["code"] in fail else "pass",
            "note": "灭火器过期" if i["code"] in fail else None,
        }
        for i in tpl["items"]
    ]


def submission(site: Site, answers, **over: Any) -> dict[str, Any]:
    body = {
        "checkpoint_id": site.checkpoint["id"],
        "tag_uid": site.checkpoint["tag_uid"],
        "scanned_at": datetime.now(UTC).isoformat(),
        "position": list(site.point),
        "accuracy_m": 8,
        "answers": answers,
    }
    body.update(over)
    return body


async def submit(
    svc: RunningService,
    body: dict[str, Any],
    photos: list[tuple[str, bytes]] | None = None,
    token: str = INSPECTOR,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    files = [
        ("photos", (name, data, "application/octet-stream"))
        for name, data in (photos if photos is not None else [("a.jpg", jpeg())])
    ]
    async with svc.client(token) as http:
        return await http.post(
            "/v1/inspections",
            data={"inspection": json.dumps(body)},
            files=files or None,
            headers=headers,
        )


async def outbox_events(svc: RunningService, type_suffix: str) -> list[dict[str, Any]]:
    t = svc.ctx.tables.outbox
    async with svc.ctx.db.sessions() as session:
        bodies = (await session.scalars(select(t.c.body).order_by(t.c.id))).all()
    evts = [json.loads(b) for b in bodies]
    return [e for e in evts if e["type"].endswith(type_suffix)]
