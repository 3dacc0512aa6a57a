"""The demo city's territory: district 440306 with 4 streets × 3 communities; each community
is a 3 × 4 lattice of grids whose shared corners are jittered (irregular, non-overlapping,
covering the community). Every grid gets a leader, a community police officer and a
population coordinator."""

from __future__ import annotations

import random
from typing import Any

import shapely
from shapely.geometry import Point, Polygon, mapping, shape

SEED = 20261122
DISTRICT = ("440306", "宝安区")
STREETS = ["新安街道", "西乡街道", "航城街道", "福永街道"]
COMMUNITY_NAMES = [
    "海裕",
    "宝民",
    "上川",
    "固戍",
    "共乐",
    "臣田",
    "黄田",
    "鹤洲",
    "三围",
    "福围",
    "凤凰",
    "白石厦",
]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英"
ORIGIN = (113.86, 22.55)  # south-west corner of the district
CELL = (0.004, 0.003)  # one grid cell, degrees (~410 m × 330 m)
COLS, ROWS = 3, 4  # grids per community


def _lattice(rng: random.Random, cols: int, rows: int) -> list[list[tuple[float, float]]]:
    """Corner points of the whole district lattice, interior corners jittered."""
    points = []
    for j in range(rows + 1):
        row = []
        for i in range(cols + 1):
            x = ORIGIN[0] + i * CELL[0]
            y = ORIGIN[1] + j * CELL[1]
            if 0 < i < cols and 0 < j < rows:
                x += rng.uniform(-0.3, 0.3) * CELL[0]
                y += rng.uniform(-0.3, 0.3) * CELL[1]
            row.append((round(x, 6), round(y, 6)))
        points.append(row)
    return points


def plan_grid(seed: int = SEED) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Regions (in creation order) and members; no I/O, so tests can check the geometry."""
    rng = random.Random(seed)  # noqa: S311 - seeded demo data, not security
    communities_per_street = 3
    cols = len(STREETS) * communities_per_street * COLS  # communities side by side, west→east
    corners = _lattice(rng, cols, ROWS)

    def cell(i: int, j: int) -> Polygon:
        return Polygon(
            [
                corners[j][i],
                corners[j][i + 1],
                corners[j + 1][i + 1],
                corners[j + 1][i],
                corners[j][i],
            ]
        )

    regions: list[dict[str, Any]] = []
    members: list[dict[str, Any]] = []
    street_shapes = []
    community_index = 0
    for s, street_name in enumerate(STREETS):
        street_code = f"{DISTRICT[0]}{s + 1:03d}"
        community_shapes = []
        street_regions = []
        for c in range(communities_per_street):
            community_code = f"{street_code}{c + 1:03d}"
            base_col = community_index * COLS
            name = COMMUNITY_NAMES[community_index % len(COMMUNITY_NAMES)]
            community_index += 1
            grid_cells = []
            grid_regions = []
            number = 0
            for j in reversed(range(ROWS)):  # numbered west→east, north→south (DESIGN.md)
                for i in range(COLS):
                    number += 1
                    shape = cell(base_col + i, j)
                    grid_cells.append(shape)
                    code = f"{community_code}{number:03d}"
                    grid_regions.append(
                        {
                            "code": code,
                            "level": "grid",
                            "parent_code": community_code,
                            "name": f"{name}第{number}网格",
                            "grid_class": rng.choices(["enhanced", "key", "regular"], [2, 4, 9])[0],
                            "households": rng.randint(150, 600),
                            "residents": rng.randint(400, 1800),
                            "boundary": mapping(shape),
                        }
                    )
                    for role in ("leader", "police_officer", "coordinator"):
                        members.append(
                            {
                                "grid_code": code,
                                "role": role,
                                "valid_from": "2026-01-01",
                                "name": rng.choice(SURNAMES)
                                + rng.choice(GIVEN)
                                + rng.choice(["", *GIVEN]),
                                "phone": f"13{rng.randint(100000000, 999999999)}",
                            }
                        )
            community_shape = shapely.union_all(grid_cells)
            community_shapes.append(community_shape)
            street_regions.append(
                {
                    "code": community_code,
                    "level": "community",
                    "parent_code": street_code,
                    "name": f"{name}社区",
                    "kind": "residents_committee",
                    "boundary": mapping(community_shape),
                }
            )
            street_regions.extend(grid_regions)
        street_shape = shapely.union_all(community_shapes)
        street_shapes.append(street_shape)
        regions.append(
            {
                "code": street_code,
                "level": "street",
                "parent_code": DISTRICT[0],
                "name": street_name,
                "kind": "subdistrict",
                "boundary": mapping(street_shape),
            }
        )
        regions.extend(street_regions)
    district = {
        "code": DISTRICT[0],
        "level": "district",
        "name": DISTRICT[1],
        "boundary": mapping(shapely.union_all(street_shapes)),
    }
    return [district, *regions], members


def random_point(
    rng: random.Random, boundary: dict[str, Any], margin: float = 0.0003
) -> tuple[float, float]:
    """A point well inside ``boundary`` (``margin`` degrees, ~30 m), so rounding and grid-svc's
    lookup cannot place it in a neighbour."""
    inner = shape(boundary).buffer(-margin)
    minx, miny, maxx, maxy = inner.bounds
    while True:
        x = round(rng.uniform(minx, maxx), 6)
        y = round(rng.uniform(miny, maxy), 6)
        if inner.contains(Point(x, y)):
            return x, y


def person_name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(["", *GIVEN])
