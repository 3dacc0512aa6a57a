"""Handlers of the grid.v1 events population-svc keeps read models from."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from gridgov_common.events import CloudEvent
from gridgov_common.events.grid import MemberState, RegionState
from gridgov_common.inbox import Handler

from .models import Coordinator, KnownGrid


async def on_region(session: AsyncSession, evt: CloudEvent, payload: RegionState) -> None:
    if payload.level != "grid":
        return
    grid = await session.get(KnownGrid, payload.code)
    if grid is not None and grid.version >= payload.version:
        return
    if grid is None:
        grid = KnownGrid(code=payload.code)
        session.add(grid)
    grid.name = payload.name
    grid.status = payload.status
    grid.version = payload.version


async def on_member_assigned(session: AsyncSession, evt: CloudEvent, payload: MemberState) -> None:
    if payload.role != "coordinator":
        return
    row = await session.get(Coordinator, payload.member_id)
    if row is None:
        row = Coordinator(member_id=payload.member_id)
        session.add(row)
    row.grid_code = payload.grid_code
    row.name = payload.name
    row.valid_from = payload.valid_from
    row.valid_to = payload.valid_to
    row.active = True


async def on_member_removed(session: AsyncSession, evt: CloudEvent, payload: MemberState) -> None:
    if payload.role != "coordinator":
        return
    row = await session.get(Coordinator, payload.member_id)
    if row is None:
        row = Coordinator(
            member_id=payload.member_id,
            grid_code=payload.grid_code,
            name=payload.name,
            valid_from=payload.valid_from,
        )
        session.add(row)
    row.valid_to = payload.valid_to
    row.active = False


HANDLERS: dict[str, Handler] = {
    "gridgov.grid.region.created": on_region,
    "gridgov.grid.region.updated": on_region,
    "gridgov.grid.region.retired": on_region,
    "gridgov.grid.member.assigned": on_member_assigned,
    "gridgov.grid.member.removed": on_member_removed,
}
