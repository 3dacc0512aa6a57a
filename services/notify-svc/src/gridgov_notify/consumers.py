"""Handlers of the events notify-svc consumes."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from gridgov_common.events import CloudEvent
from gridgov_common.events.grid import RegionState

from .models import KnownRegion


async def on_region_changed(session: AsyncSession, evt: CloudEvent, payload: RegionState) -> None:
    region = await session.get(KnownRegion, payload.code)
    if region is not None and region.version >= payload.version:
        return  # an older state arriving late changes nothing
    if region is None:
        region = KnownRegion(code=payload.code)
        session.add(region)
    region.level = payload.level
    region.name = payload.name
    region.parent_code = payload.parent_code
    region.status = payload.status
    region.grid_class = payload.grid_class
    region.version = payload.version


HANDLERS = {
    "gridgov.grid.region.created": on_region_changed,
    "gridgov.grid.region.updated": on_region_changed,
    "gridgov.grid.region.retired": on_region_changed,
}
