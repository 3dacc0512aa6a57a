"""The demo city's departments (notify-svc) and who covers what.

Street police stations under the district public-security bureau, two fire-rescue stations
under the district brigade, a residents' committee per community and a floating-population
station per street under their street office, plus the district education and health bureaus
(the default special-group rules route to them). Parents are where escalations and
"not our responsibility" re-routes go. All are SSE-only: the demo has no department systems
listening for webhooks, and notify-svc does not require one.
"""

from __future__ import annotations

from typing import Any

from .grid import COMMUNITY_NAMES, DISTRICT, STREETS


def plan_departments(regions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Department bodies in creation order (parents first)."""
    district = DISTRICT[0]
    streets = [r for r in regions if r["level"] == "street"]
    communities = [r for r in regions if r["level"] == "community"]
    depts: list[dict[str, Any]] = [
        _dept("police-baoan", "宝安公安分局", "police_station", [district]),
        _dept("fire-baoan", "宝安区消防救援大队", "fire_brigade", [district]),
        _dept("education-baoan", "宝安区教育局", "education", [district]),
        _dept("health-baoan", "宝安区卫生健康局", "health", [district]),
    ]
    # Two fire-rescue stations, each covering two streets.
    for n in range(0, len(streets), 2):
        codes = [s["code"] for s in streets[n : n + 2]]
        depts.append(
            _dept(
                f"fire-station-{n // 2 + 1}",
                f"{streets[n]['name'].removesuffix('街道')}消防救援站",
                "fire_brigade",
                codes,
                parent="fire-baoan",
            )
        )
    for s, street in enumerate(streets):
        short = STREETS[s].removesuffix("街道")
        office = f"office-{street['code']}"
        depts.append(_dept(office, f"{short}街道办事处", "other", [street["code"]]))
        depts.append(
            _dept(
                f"police-{street['code']}",
                f"{short}派出所",
                "police_station",
                [street["code"]],
                parent="police-baoan",
            )
        )
        depts.append(
            _dept(
                f"flow-{street['code']}",
                f"{short}流动人口管理站",
                "flow_station",
                [street["code"]],
                parent=office,
            )
        )
    for i, community in enumerate(communities):
        depts.append(
            _dept(
                f"committee-{community['code']}",
                f"{COMMUNITY_NAMES[i % len(COMMUNITY_NAMES)]}社区居委会",
                "community_committee",
                [community["code"]],
                parent=f"office-{community['parent_code']}",
            )
        )
    return depts


def _dept(
    dept_id: str, name: str, kind: str, prefixes: list[str], parent: str | None = None
) -> dict[str, Any]:
    return {
        "id": dept_id,
        "name": name,
        "type": kind,
        "jurisdictions": prefixes,
        "parent_id": parent,
        "sse_enabled": True,
    }
