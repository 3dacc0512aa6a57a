"""A small, fully covered city built through grid-svc's public API, for tests and examples.

Two streets under district 440306: the first street's community is split into a west grid
(class ``key``) and an east grid (``regular``); the second street has one community with one
grid. Boxes are in WGS-84 near Shenzhen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx


def box(west: float, south: float, east: float, north: float) -> dict[str, Any]:
    return {
        "type": "Polygon",
        "coordinates": [
            [[west, south], [east, south], [east, north], [west, north], [west, south]]
        ],
    }


@dataclass
class SmallCity:
    district: str = "440306"
    street: str = "440306001"
    community: str = "440306001001"
    grid_west: str = "440306001001001"
    grid_east: str = "440306001001002"
    other_street: str = "440306002"
    other_community: str = "440306002001"
    other_grid: str = "440306002001001"
    boxes: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)

    def point_in(self, code: str) -> tuple[float, float]:
        west, south, east, north = self.boxes[code]
        return ((west + east) / 2, (south + north) / 2)


async def create_small_city(http: httpx.AsyncClient) -> SmallCity:
    city = SmallCity()
    city.boxes = {
        city.district: (113.89, 22.54, 113.95, 22.58),
        city.street: (113.90, 22.55, 113.92, 22.57),
        city.community: (113.90, 22.55, 113.92, 22.57),
        city.grid_west: (113.90, 22.55, 113.91, 22.57),
        city.grid_east: (113.91, 22.55, 113.92, 22.57),
        city.other_street: (113.92, 22.55, 113.94, 22.57),
        city.other_community: (113.92, 22.55, 113.94, 22.57),
        city.other_grid: (113.92, 22.55, 113.94, 22.57),
    }
    plan: list[dict[str, Any]] = [
        {"code": city.district, "level": "district", "name": "宝安区"},
        {"code": city.street, "level": "street", "parent_code": city.district, "name": "新安街道"},
        {
            "code": city.community,
            "level": "community",
            "parent_code": city.street,
            "name": "海裕社区",
        },
        {
            "code": city.grid_west,
            "level": "grid",
            "parent_code": city.community,
            "name": "海裕第一网格",
            "grid_class": "key",
        },
        {
            "code": city.grid_east,
            "level": "grid",
            "parent_code": city.community,
            "name": "海裕第二网格",
            "grid_class": "regular",
        },
        {
            "code": city.other_street,
            "level": "street",
            "parent_code": city.district,
            "name": "西乡街道",
        },
        {
            "code": city.other_community,
            "level": "community",
            "parent_code": city.other_street,
            "name": "固戍社区",
        },
        {
            "code": city.other_grid,
            "level": "grid",
            "parent_code": city.other_community,
            "name": "固戍第一网格",
            "grid_class": "enhanced",
        },
    ]
    for item in plan:
        item["boundary"] = box(*city.boxes[item["code"]])
        response = await http.post("/v1/regions", json=item)
        if response.status_code != 201:
            raise RuntimeError(f"creating {item['code']} failed: {response.text}")
    return city
