"""Handlers of the events inspection-svc consumes: grid.v1 (read model) and notify.v1."""

from __future__ import annotations

from typing import Any

import shapely.geometry
from sqlalchemy.ext.asyncio import AsyncSession

from gridgov_common.events import CloudEvent, EventPayload, make_event
from gridgov_common.events.grid import RegionState
from gridgov_common.events.notify import DispatchStateChanged
from gridgov_common.outbox import record

from . import hazards, venues
from .models import GridRegion, Hazard, HazardHistory, tables
from .settings import Settings


class OutboxPublisher:
    """What ``ctx.publish`` does, for handlers (which get a session but no context)."""

    def __init__(self, source: str) -> None:
        self.source = source

    async def publish(
        self, session: AsyncSession, payload: EventPayload, *, subject: str, gridcode: str | None
    ) -> Any:
        evt = make_event(payload, source=self.source, subject=subject, gridcode=gridcode)
        await record(session, tables, evt)
        return evt


def make_handlers(settings: Settings) -> dict[str, Any]:
    pub = OutboxPublisher(settings.service_name)

    async def on_region_changed(
        session: AsyncSession, evt: CloudEvent, payload: RegionState
    ) -> None:
        region = await session.get(GridRegion, payload.code)
        if region is not None and region.version >= payload.version and region.version > 0:
            return  # an older state arriving late changes nothing
        old_class = region.grid_class if region is not None else None
        if region is None:
            region = GridRegion(code=payload.code)
            session.add(region)
        region.level = payload.level
        region.name = payload.name
        region.parent_code = payload.parent_code
        region.status = payload.status
        region.grid_class = payload.grid_class
        region.version = payload.version
        old_geometry = region.geometry
        if payload.level == "grid" and payload.geometry is not None:
            region.geometry = shapely.geometry.shape(payload.geometry)
        await session.flush()
        if payload.level == "grid" and payload.grid_class != old_class:
            # The cycle rule depends on the class: re-apply it to the grid's checkpoints.
            await venues.regrade_grid(session, settings, payload.code)
        if payload.level == "grid" and (
            region.status == "retired"
            or old_geometry is None
            or not old_geometry.equals(region.geometry)
        ):
            await venues.follow_grid_change(session, settings, region)

    async def on_dispatch_changed(
        session: AsyncSession, evt: CloudEvent, payload: DispatchStateChanged
    ) -> None:
        if payload.source_event_type != hazards.HAZARD_REPORTED or not payload.source_subject:
            return
        hazard = await session.get(Hazard, payload.source_subject)
        if hazard is None:
            return
        target = hazards.target_for_dispatch(
            hazard.state, payload.to_state, payload.feedback_result
        )
        actor = payload.actor or f"department:{payload.department_id}"
        if target is None:
            step = hazards.dispatch_step(payload)
            if step is not None:
                session.add(
                    HazardHistory(
                        hazard_id=hazard.id,
                        from_state=hazard.state,
                        to_state=hazard.state,
                        actor=actor,
                        reason=step,
                        at=payload.at,
                        kind="dispatch",
                    )
                )
            return
        why = {
            "dispatched": f"dispatched to {payload.department_name} ({payload.to_state})",
            "acknowledged": f"{payload.department_name} acknowledged the dispatch",
            "rectification_reported": f"{payload.department_name} reported it rectified"
            + (f": {payload.note}" if payload.note else ""),
        }[target]
        await hazards.transition(
            session, pub, hazard, target, actor=actor, reason=why, at=payload.at
        )

    return {
        "gridgov.grid.region.created": on_region_changed,
        "gridgov.grid.region.updated": on_region_changed,
        "gridgov.grid.region.retired": on_region_changed,
        "gridgov.notify.dispatch.state_changed": on_dispatch_changed,
    }
