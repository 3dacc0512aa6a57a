"""Handlers of the events notify-svc consumes."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gridgov_common.events import CloudEvent
from gridgov_common.events.grid import RegionState
from gridgov_common.inbox import Handler

from .dispatches import route_event
from .models import KnownRegion
from .rules import ROUTED_EVENT_TYPES
from .workcal import WorkCalendar


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


def make_router(calendar: WorkCalendar) -> Handler:
    async def on_routable(session: AsyncSession, evt: CloudEvent, payload: Any) -> None:
        await route_event(session, evt, calendar)

    return on_routable


def build_handlers(calendar: WorkCalendar) -> dict[str, Handler]:
    handlers: dict[str, Handler] = {
        "gridgov.grid.region.created": on_region_changed,
        "gridgov.grid.region.updated": on_region_changed,
        "gridgov.grid.region.retired": on_region_changed,
    }
    route = make_router(calendar)
    for event_type in ROUTED_EVENT_TYPES:
        handlers[event_type] = route
    return handlers


HANDLERS = build_handlers(WorkCalendar())
