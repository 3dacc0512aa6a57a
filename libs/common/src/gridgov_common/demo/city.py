"""The demo city's plan: pure, so a seed, a scale and the day give the same city every time."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from .departments import plan_departments
from .grid import SEED, plan_grid
from .population import plan_population
from .venues import plan_venues

CHINA = timezone(timedelta(hours=8))


@dataclass(frozen=True)
class DemoCity:
    seed: int
    today: date
    regions: list[dict[str, Any]]
    members: list[dict[str, Any]]
    departments: list[dict[str, Any]]
    venues: list[dict[str, Any]]
    houses: list[dict[str, Any]]
    employers: list[dict[str, Any]]
    persons: list[dict[str, Any]]
    points_table: dict[str, Any]
    quotas: list[dict[str, Any]]

    @property
    def grids(self) -> list[dict[str, Any]]:
        return [r for r in self.regions if r["level"] == "grid"]

    @property
    def checkpoints(self) -> list[dict[str, Any]]:
        return [cp for v in self.venues for cp in v["checkpoints"]]


def plan(seed: int = SEED, scale: float = 1.0, today: date | None = None) -> DemoCity:
    """The whole city. ``scale`` shrinks venues, people and employers (not the territory)
    for quick tests; ``today`` anchors the dates of people's histories."""
    today = today or datetime.now(CHINA).date()
    regions, members = plan_grid(seed)
    grids = [r for r in regions if r["level"] == "grid"]
    # One random stream per part: changing the scale of one does not reshuffle another.
    venues = plan_venues(random.Random(f"{seed}:venues"), grids, scale)  # noqa: S311
    people = plan_population(random.Random(f"{seed}:people"), grids, scale, today)  # noqa: S311
    return DemoCity(
        seed=seed,
        today=today,
        regions=regions,
        members=members,
        departments=plan_departments(regions),
        venues=venues,
        **people,
    )
