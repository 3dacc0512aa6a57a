"""Venues, checkpoints and check-item templates (registration, moves, the cycle rule)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import shapely
import shapely.prepared
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gridgov_common.auth import Principal
from gridgov_common.db import utcnow
from gridgov_common.errors import Problem, conflict, invalid, not_found
from gridgov_common.gridclient import Location

from . import catalogue, tagkeys
from .models import Checkpoint, CheckTemplate, GridRegion, Venue, VenueType
from .schemas import (
    CheckpointIn,
    CheckpointOut,
    CheckpointPatch,
    TemplateIn,
    TemplateOut,
    VenueIn,
    VenueOut,
    VenuePatch,
    VenueTypeIn,
)
from .settings import Settings


def venue_out(v: Venue) -> VenueOut:
    return VenueOut(
        id=v.id,
        name=v.name,
        venue_type=v.venue_type,
        address=v.address,
        location=(v.lon, v.lat),
        floor_area_m2=v.floor_area_m2,
        operator_name=v.operator_name,
        contact_phone=v.contact_phone,
        licence_no=v.licence_no,
        grid_code=v.grid_code,
        community_code=v.community_code,
        street_code=v.street_code,
        grid_class=v.grid_class,
        version=v.version,
    )


def checkpoint_out(c: Checkpoint, now: datetime | None = None) -> CheckpointOut:
    return CheckpointOut(
        id=c.id,
        venue_id=c.venue_id,
        name=c.name,
        tag_uid=c.tag_uid,
        secure_tag=c.tag_key_enc is not None,
        venue_type=c.venue_type,
        item_codes=c.item_codes,
        base_cycle_days=c.base_cycle_days,
        effective_cycle_days=c.effective_cycle_days,
        location=(c.lon, c.lat),
        grid_code=c.grid_code,
        assigned_inspector=c.assigned_inspector,
        active=c.active,
        last_inspected_at=c.last_inspected_at,
        due_at=c.due_at,
        open_hazards=c.open_hazards,
        colour=colour_of(c, now or utcnow()),
    )


def colour_of(c: Checkpoint, now: datetime) -> str:
    """Python twin of status.COLOUR (used for single rows; sets use the SQL expression)."""
    if c.open_hazards > 0:
        return "red"
    if c.active and c.due_at <= now:
        return "yellow"
    return "green"


def template_out(t: CheckTemplate) -> TemplateOut:
    return TemplateOut.model_validate(t, from_attributes=True)


# --- grid read model --------------------------------------------------------------------


async def remember_grid(session: AsyncSession, loc: Location) -> None:
    """Seed the read model from a locate answer if grid.v1 has not told us about it yet."""
    if await session.get(GridRegion, loc.grid_code) is not None:
        return
    try:
        # Concurrent requests for venues in one new grid (and the grid.v1 consumer) race to
        # insert it: whoever loses keeps the winner's row.
        async with session.begin_nested():
            session.add(
                GridRegion(
                    code=loc.grid_code,
                    level="grid",
                    name=loc.grid_name,
                    parent_code=loc.community_code,
                    status="active",
                    grid_class=loc.grid_class,
                    version=0,
                )
            )
    except IntegrityError:
        pass


async def grid_class_of(session: AsyncSession, grid_code: str, fallback: str | None) -> str | None:
    region = await session.get(GridRegion, grid_code)
    return region.grid_class if region is not None and region.version > 0 else fallback


def schedule(cp: Checkpoint, grid_class: str | None, settings: Settings) -> None:
    """Apply the cycle rule and recompute when the checkpoint is next due."""
    cp.effective_cycle_days = catalogue.effective_cycle_days(
        cp.base_cycle_days, grid_class, settings.cycle_factors
    )
    start = cp.last_inspected_at or cp.created_at
    cp.due_at = start + timedelta(days=cp.effective_cycle_days)


# --- venue types and templates ------------------------------------------------------------


async def add_venue_type(session: AsyncSession, principal: Principal, body: VenueTypeIn) -> None:
    if await session.get(VenueType, body.code) is not None:
        raise conflict("venue-type-exists", f"venue type {body.code} already exists")
    session.add(VenueType(code=body.code, name=body.name))
    await session.flush()
    items = (
        [i.model_dump() for i in body.items] if body.items else [dict(i) for i in catalogue._COMMON]
    )
    session.add(
        CheckTemplate(
            venue_type=body.code,
            version=1,
            items=items,
            requires_photo=True,
            created_by=principal.subject,
            note="created with the venue type",
        )
    )


async def new_template_version(
    session: AsyncSession, principal: Principal, venue_type: str, body: TemplateIn
) -> CheckTemplate:
    if await session.get(VenueType, venue_type) is None:
        raise not_found("venue type", venue_type)
    codes = [i.code for i in body.items]
    if len(codes) != len(set(codes)):
        raise invalid("duplicate-item-code", "each check item code may appear only once")
    current = await session.scalar(
        select(func.max(CheckTemplate.version)).where(CheckTemplate.venue_type == venue_type)
    )
    tpl = CheckTemplate(
        venue_type=venue_type,
        version=(current or 0) + 1,
        items=[i.model_dump() for i in body.items],
        requires_photo=body.requires_photo,
        created_by=principal.subject,
        note=body.note,
    )
    session.add(tpl)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise conflict(
            "template-edited-concurrently", "another edit created this version; retry"
        ) from exc
    return tpl


# --- venues -------------------------------------------------------------------------------


async def register_venue(ctx: Any, principal: Principal, body: VenueIn) -> VenueOut:
    async with ctx.db.sessions() as session:
        if await session.get(VenueType, body.venue_type) is None:
            raise invalid(
                "unknown-venue-type",
                f"venue type {body.venue_type} is not in the list (GET /v1/venue-types)",
            )
    # Resolve first: if grid-svc is down, nothing is written (503, retry succeeds).
    loc = await ctx.grid.locate(body.location[0], body.location[1], body.crs)
    principal.ensure_covers(loc.grid_code)
    async with ctx.db.transaction() as session:
        await remember_grid(session, loc)
        venue = Venue(
            id=str(uuid.uuid4()),
            name=body.name,
            venue_type=body.venue_type,
            address=body.address,
            lon=loc.lon,
            lat=loc.lat,
            location=shapely.Point(loc.lon, loc.lat),
            floor_area_m2=body.floor_area_m2,
            operator_name=body.operator_name,
            contact_phone=body.contact_phone,
            licence_no=body.licence_no,
            grid_code=loc.grid_code,
            community_code=loc.community_code,
            street_code=loc.street_code,
            grid_class=loc.grid_class,
            created_by=principal.subject,
            version=1,
        )
        session.add(venue)
    return venue_out(venue)


async def update_venue(ctx: Any, principal: Principal, venue_id: str, body: VenuePatch) -> VenueOut:
    async with ctx.db.sessions() as session:
        venue = await session.get(Venue, venue_id)
    if venue is None or not principal.covers(venue.grid_code):
        raise not_found("venue", venue_id)
    loc = None
    if body.location is not None:
        loc = await ctx.grid.locate(body.location[0], body.location[1], body.crs)
        principal.ensure_covers(loc.grid_code)
    async with ctx.db.transaction() as session:
        venue = await session.get(Venue, venue_id)
        if venue is None:
            raise not_found("venue", venue_id)
        for field in ("name", "address", "floor_area_m2", "operator_name", "contact_phone"):
            value = getattr(body, field)
            if value is not None:
                setattr(venue, field, value)
        if body.licence_no is not None:
            venue.licence_no = body.licence_no
        if loc is not None:
            await remember_grid(session, loc)
            old = (venue.lon, venue.lat)
            await move_venue(session, ctx.settings, venue, loc, old)
        venue.version += 1
    return venue_out(venue)


async def move_venue(
    session: AsyncSession,
    settings: Settings,
    venue: Venue,
    loc: Location,
    old: tuple[float, float],
) -> None:
    venue.lon, venue.lat = loc.lon, loc.lat
    venue.location = shapely.Point(loc.lon, loc.lat)
    venue.grid_code = loc.grid_code
    venue.community_code = loc.community_code
    venue.street_code = loc.street_code
    venue.grid_class = loc.grid_class
    grid_class = await grid_class_of(session, loc.grid_code, loc.grid_class)
    for cp in await session.scalars(select(Checkpoint).where(Checkpoint.venue_id == venue.id)):
        if (cp.lon, cp.lat) == old:  # checkpoints that sat at the venue's point move with it
            cp.lon, cp.lat = loc.lon, loc.lat
        cp.grid_code = loc.grid_code
        cp.community_code = loc.community_code
        cp.street_code = loc.street_code
        schedule(cp, grid_class, settings)


# --- checkpoints --------------------------------------------------------------------------


async def add_checkpoint(
    ctx: Any, principal: Principal, venue_id: str, body: CheckpointIn
) -> CheckpointOut:
    settings: Settings = ctx.settings
    uid = body.tag_uid.upper()
    async with ctx.db.transaction() as session:
        venue = await session.get(Venue, venue_id)
        if venue is None or not principal.covers(venue.grid_code):
            raise not_found("venue", venue_id)
        tpl = await catalogue.latest_template(session, venue.venue_type)
        if tpl is None:
            raise invalid("no-template", f"venue type {venue.venue_type} has no check items")
        _check_item_codes(body.item_codes, tpl)
        if await session.scalar(select(Checkpoint.id).where(Checkpoint.tag_uid == uid)):
            raise conflict("tag-in-use", f"tag {uid} is already attached to another checkpoint")
        lon, lat = body.location or (venue.lon, venue.lat)
        now = utcnow()
        cp = Checkpoint(
            id=str(uuid.uuid4()),
            venue_id=venue.id,
            name=body.name,
            tag_uid=uid,
            tag_key_enc=tagkeys.seal(settings, uid, tagkeys.parse_tag_key(body.tag_key))
            if body.tag_key
            else None,
            item_codes=body.item_codes,
            base_cycle_days=body.cycle_days or settings.default_cycle_days,
            lon=lon,
            lat=lat,
            venue_type=venue.venue_type,
            grid_code=venue.grid_code,
            community_code=venue.community_code,
            street_code=venue.street_code,
            assigned_inspector=body.assigned_inspector,
            active=True,
            created_at=now,
            open_hazards=0,
            colour="green",
        )
        schedule(cp, await grid_class_of(session, venue.grid_code, venue.grid_class), settings)
        session.add(cp)
        try:
            await session.flush()
        except IntegrityError as exc:
            raise conflict("tag-in-use", f"tag {uid} is already attached") from exc
    return checkpoint_out(cp)


async def update_checkpoint(
    ctx: Any, principal: Principal, checkpoint_id: str, body: CheckpointPatch
) -> CheckpointOut:
    async with ctx.db.transaction() as session:
        cp = await session.get(Checkpoint, checkpoint_id)
        if cp is None or not principal.covers(cp.grid_code):
            raise not_found("checkpoint", checkpoint_id)
        if body.item_codes is not None:
            tpl = await catalogue.latest_template(session, cp.venue_type)
            assert tpl is not None
            _check_item_codes(body.item_codes, tpl)
            cp.item_codes = body.item_codes
        if body.assigned_inspector is not None:
            cp.assigned_inspector = body.assigned_inspector
        if body.active is not None:
            cp.active = body.active
        if body.cycle_days is not None:
            cp.base_cycle_days = body.cycle_days
            venue = await session.get(Venue, cp.venue_id)
            assert venue is not None
            schedule(cp, await grid_class_of(session, cp.grid_code, venue.grid_class), ctx.settings)
    return checkpoint_out(cp)


def _check_item_codes(codes: list[str] | None, tpl: CheckTemplate) -> None:
    if codes is None:
        return
    known = {i["code"] for i in tpl.items}
    unknown = sorted(set(codes) - known)
    if unknown or not codes:
        raise invalid(
            "unknown-check-items",
            f"item codes {unknown or '(empty)'} are not in template v{tpl.version} of "
            f"{tpl.venue_type}; known: {sorted(known)}",
        )


def items_for(cp: Checkpoint, tpl: CheckTemplate) -> list[dict[str, Any]]:
    """The checkpoint's items under the template version being answered."""
    if cp.item_codes is None:
        return list(tpl.items)
    wanted = set(cp.item_codes)
    items = [i for i in tpl.items if i["code"] in wanted]
    if not items:
        raise Problem(
            409,
            "checkpoint-items-stale",
            "none of this checkpoint's items exist in the current template; update its items",
        )
    return items


async def follow_grid_change(
    session: AsyncSession, settings: Settings, region: GridRegion
) -> list[str]:
    """Keep venues in the grid that contains them after a grid.v1 change (cheap: bounded by
    one community). A created or reshaped grid takes the venues of its community that lie
    inside it; a retired grid hands its venues to whichever known active grid contains them
    (a venue no known grid contains stays put until the successor grid's event arrives)."""
    moved: list[str] = []
    if region.level != "grid" or region.parent_code is None:
        return moved
    if region.status == "active" and region.geometry is not None:
        shape = shapely.prepared.prep(region.geometry)
        for venue in await session.scalars(
            select(Venue).where(
                Venue.community_code == region.parent_code, Venue.grid_code != region.code
            )
        ):
            if shape.contains(shapely.Point(venue.lon, venue.lat)):
                await assign_grid(session, settings, venue, region)
                moved.append(venue.id)
    elif region.status == "retired":
        grids = list(
            await session.scalars(
                select(GridRegion).where(
                    GridRegion.level == "grid",
                    GridRegion.status == "active",
                    GridRegion.code.startswith(region.code[:6]),
                    GridRegion.geometry.is_not(None),
                )
            )
        )
        for venue in await session.scalars(select(Venue).where(Venue.grid_code == region.code)):
            point = shapely.Point(venue.lon, venue.lat)
            home = next((g for g in grids if g.geometry.contains(point)), None)
            if home is not None:
                await assign_grid(session, settings, venue, home)
                moved.append(venue.id)
    return moved


async def assign_grid(
    session: AsyncSession, settings: Settings, venue: Venue, grid: GridRegion
) -> None:
    venue.grid_code = grid.code
    venue.community_code = grid.parent_code or grid.code[:12]
    venue.street_code = grid.code[:9]
    venue.grid_class = grid.grid_class
    venue.version += 1
    for cp in await session.scalars(select(Checkpoint).where(Checkpoint.venue_id == venue.id)):
        cp.grid_code = venue.grid_code
        cp.community_code = venue.community_code
        cp.street_code = venue.street_code
        schedule(cp, grid.grid_class, settings)


async def regrade_grid(session: AsyncSession, settings: Settings, grid_code: str) -> int:
    """A grid's class changed: re-apply the cycle rule to its checkpoints (bounded per grid)."""
    region = await session.get(GridRegion, grid_code)
    grid_class = region.grid_class if region else None
    n = 0
    for cp in await session.scalars(select(Checkpoint).where(Checkpoint.grid_code == grid_code)):
        schedule(cp, grid_class, settings)
        n += 1
    return n
