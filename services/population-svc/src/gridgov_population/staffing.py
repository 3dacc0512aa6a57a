"""Staffing: floating residents per coordinator (协管员) per grid against the 1:500 norm."""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import func, or_, select

from gridgov_common.app import ServiceContext
from gridgov_common.auth import Principal

from .access import china_today, scope_filter
from .models import Coordinator, KnownGrid, Registration
from .schemas import GridStaffing, StaffingOut
from .settings import Settings


def assess(grid_code: str, residents: int, coordinators: int, norm: int) -> GridStaffing:
    required = math.ceil(residents / norm) if residents else 0
    return GridStaffing(
        grid_code=grid_code,
        floating_residents=residents,
        coordinators=coordinators,
        residents_per_coordinator=round(residents / coordinators, 1) if coordinators else None,
        required_coordinators=required,
        understaffed=coordinators < required,
    )


async def report(ctx: ServiceContext, principal: Principal, region: str | None) -> dict[str, Any]:
    settings: Settings = ctx.settings  # type: ignore[assignment]
    norm = settings.residents_per_coordinator
    today = china_today()
    async with ctx.db.sessions() as session:
        reg_stmt = (
            select(Registration.grid_code, func.count())
            .where(Registration.active.is_(True), Registration.classification == "inflow")
            .group_by(Registration.grid_code)
        )
        scope = scope_filter(principal, Registration.grid_code, region)
        if scope is not None:
            reg_stmt = reg_stmt.where(scope)
        residents = {g: n for g, n in (await session.execute(reg_stmt)).all()}
        co_stmt = (
            select(Coordinator.grid_code, func.count())
            .where(
                Coordinator.active.is_(True),
                Coordinator.valid_from <= today,
                or_(Coordinator.valid_to.is_(None), Coordinator.valid_to >= today),
            )
            .group_by(Coordinator.grid_code)
        )
        scope = scope_filter(principal, Coordinator.grid_code, region)
        if scope is not None:
            co_stmt = co_stmt.where(scope)
        coordinators = {g: n for g, n in (await session.execute(co_stmt)).all()}
        grid_stmt = select(KnownGrid.code).where(KnownGrid.status == "active")
        scope = scope_filter(principal, KnownGrid.code, region)
        if scope is not None:
            grid_stmt = grid_stmt.where(scope)
        known = set((await session.scalars(grid_stmt)).all())
    codes = sorted(known | set(residents) | set(coordinators))
    grids = [assess(c, residents.get(c, 0), coordinators.get(c, 0), norm) for c in codes]
    return StaffingOut(
        norm=norm, grids=grids, understaffed=[g.grid_code for g in grids if g.understaffed]
    ).model_dump(mode="json")
