"""What ships with the service: the nine small places, their check items, and the pure rules
for check cycles and rectification deadlines."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from .models import CheckTemplate, VenueType

# 九小场所: the maintained list; more types can be added through the API.
VENUE_TYPES: dict[str, str] = {
    "school_kindergarten": "小学校、幼儿园",
    "clinic": "小医院、诊所",
    "shop": "小商店",
    "restaurant": "小餐饮场所",
    "hotel": "小旅馆",
    "entertainment": "小歌舞娱乐场所",
    "internet_cafe": "小网吧",
    "beauty_bath": "小美容洗浴场所",
    "workshop": "小生产加工企业",
}


def _item(code: str, title: str, severity: str = "general") -> dict[str, Any]:
    return {"code": code, "title": title, "severity": severity}


_COMMON = [
    _item("extinguishers", "灭火器配置齐全且在有效期内 (extinguishers present and in date)"),
    _item("exits_clear", "安全出口、疏散通道畅通 (exits and escape routes clear)", "major"),
    _item(
        "emergency_lighting",
        "应急照明、疏散指示标志完好 (emergency lighting and exit signs working)",
    ),
    _item("wiring", "电气线路规范，无私拉乱接 (wiring safe, no improvised connections)"),
    _item(
        "no_living_quarters",
        "无“三合一”违规住人 (no living quarters in the premises: three-in-one ban)",
        "major",
    ),
]
_GAS = _item("gas_safe", "燃气管道、阀门、报警器完好 (gas installation safe)", "major")
_EXTRA: dict[str, list[dict[str, Any]]] = {
    "school_kindergarten": [_item("drills", "定期开展疏散演练 (evacuation drills held)")],
    "clinic": [_item("oxygen_storage", "氧气瓶等危险品存放规范 (oxygen and hazmat stored safely)")],
    "shop": [],
    "restaurant": [_GAS, _item("hood_cleaned", "厨房排油烟罩定期清洗 (kitchen hood cleaned)")],
    "hotel": [_item("smoke_alarms", "客房独立式烟感报警器完好 (room smoke alarms working)")],
    "entertainment": [
        _item("decor_fireproof", "装修材料阻燃 (fire-retardant decoration)", "major")
    ],
    "internet_cafe": [_item("occupancy_limit", "未超员 (within occupancy limit)")],
    "beauty_bath": [_item("heaters_safe", "加热设备安全 (heaters safe)")],
    "workshop": [
        _GAS,
        _item("flammables_stored", "易燃易爆物品规范存放 (flammables stored safely)", "major"),
    ],
}


def default_items(venue_type: str) -> list[dict[str, Any]]:
    return [dict(i) for i in _COMMON + _EXTRA.get(venue_type, [])]


async def seed(session: AsyncSession) -> None:
    """Install the shipped venue types and version-1 templates that are not there yet."""
    have = set((await session.scalars(select(VenueType.code))).all())
    for code, name in VENUE_TYPES.items():
        if code not in have:
            session.add(VenueType(code=code, name=name))
    await session.flush()
    with_template = set((await session.scalars(select(CheckTemplate.venue_type))).all())
    for code in VENUE_TYPES:
        if code not in with_template:
            session.add(
                CheckTemplate(
                    venue_type=code,
                    version=1,
                    items=default_items(code),
                    requires_photo=True,
                    created_by="system",
                    note="shipped with inspection-svc",
                )
            )


async def latest_template(session: AsyncSession, venue_type: str) -> CheckTemplate | None:
    version = await session.scalar(
        select(func.max(CheckTemplate.version)).where(CheckTemplate.venue_type == venue_type)
    )
    if version is None:
        return None
    return await session.get(CheckTemplate, (venue_type, version))


def effective_cycle_days(
    base_days: int, grid_class: str | None, factors: Mapping[str, float]
) -> int:
    """The grid-class rule: enhanced/key grids are watched more often.

    ``max(1, floor(base x factor))``; an unknown or missing class keeps the base cycle.
    Rounding down errs on the side of inspecting sooner.
    """
    factor = factors.get(grid_class or "regular", 1.0)
    return max(1, math.floor(base_days * factor))


CST = timezone(timedelta(hours=8))


def add_working_days(start: datetime, days: int, holidays: Iterable[date] = ()) -> datetime:
    """End (23:59:59 China Standard Time) of the ``days``-th working day after ``start``.

    A simple business-day rule: Monday to Friday, minus the configured holiday dates.
    (notify-svc uses chinesecalendar for the official calendar incl. make-up workdays;
    here the rule is explicit and the holiday list configurable.)
    """
    off = set(holidays)
    day = start.astimezone(CST).date()
    remaining = max(0, days)
    while remaining:
        day += timedelta(days=1)
        if day.weekday() < 5 and day not in off:
            remaining -= 1
    end = datetime.combine(day, time(23, 59, 59), tzinfo=CST)
    return end.astimezone(UTC)
