"""Handlers of the events notify-svc consumes."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gridgov_common.events import CloudEvent
from gridgov_common.events.grid import RegionState
from gridgov_common.inbox import Handler

from .models import KnownRegion
from .routing import RoutingView, route_events
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


class Router:
    """Routes an event, or a run of consecutive events of one inbox batch, to departments."""

    def __init__(self, calendar: WorkCalendar) -> None:
        self.calendar = calendar
        self.view = RoutingView()

    async def __call__(self, session: AsyncSession, evt: CloudEvent, payload: Any) -> None:
        await route_events(session, [evt], self.calendar, self.view)

    async def handle_batch(
        self, session: AsyncSession, events: list[tuple[CloudEvent, Any]]
    ) -> None:
        await route_events(session, [evt for evt, _ in events], self.calendar, self.view)


def build_handlers(calendar: WorkCalendar) -> dict[str, Handler]:
    handlers: dict[str, Handler] = {
        "gridgov.grid.region.created": on_region_changed,
        "gridgov.grid.region.updated": on_region_changed,
        "gridgov.grid.region.retired": on_region_changed,
    }
    route = Router(calendar)
    for event_type in ROUTED_EVENT_TYPES:
        handlers[event_type] = route
    return handlers
