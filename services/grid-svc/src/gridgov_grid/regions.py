"""Rules of the region hierarchy: codes, geometry, containment, overlap, retirement."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gridgov_common.app import ServiceContext
from gridgov_common.auth import Principal
from gridgov_common.db import utcnow
from gridgov_common.errors import Problem, conflict, invalid, not_found
from gridgov_common.events.grid import RegionCreated, RegionRef, RegionRetired, RegionUpdated

from . import codes, geo
from .directory import Directory, RegionInfo
from .models import Region
from .schemas import RegionCreate, RegionOut, RegionUpdate
from .settings import Settings

PARENT_LEVEL = {"street": "district", "community": "street", "grid": "community"}


def directory(ctx: ServiceContext) -> Directory:
    d: Directory = ctx.state["directory"]
    return d


def info_of(region: Region) -> RegionInfo:
    return RegionInfo(
        region.code,
        region.name,
        region.level,
        region.parent_code,
        region.grid_class,
        region.status,
        region.version,
    )


async def ancestors_of(session: AsyncSession, region: Region) -> list[Region]:
    chain: list[Region] = []
    parent_code = region.parent_code
    while parent_code is not None:
        parent = await session.get(Region, parent_code)
        if parent is None:
            break
        chain.append(parent)
        parent_code = parent.parent_code
    chain.reverse()
    return chain


def region_out(
    region: Region, ancestors: Sequence[Region], with_boundary: bool = True
) -> RegionOut:
    return RegionOut(
        code=region.code,
        level=region.level,  # type: ignore[arg-type]
        kind=region.kind,
        name=region.name,
        parent_code=region.parent_code,
        status=region.status,  # type: ignore[arg-type]
        grid_class=region.grid_class,  # type: ignore[arg-type]
        households=region.households,
        residents=region.residents,
        boundary=geo.to_geojson(region.boundary) if with_boundary and region.boundary else None,
        ancestors=[{"code": a.code, "name": a.name, "level": a.level} for a in ancestors],  # type: ignore[misc]
        replaced_by=list(region.replaced_by or []),
        version=region.version,
    )


def _state(region: Region, ancestors: Sequence[Region]) -> dict[str, Any]:
    return dict(
        code=region.code,
        level=region.level,
        name=region.name,
        parent_code=region.parent_code,
        ancestors=[
            RegionRef(code=a.code, name=a.name, level=a.level)  # type: ignore[arg-type]
            for a in ancestors
        ],
        status=region.status,
        grid_class=region.grid_class,
        households=region.households,
        residents=region.residents,
        geometry=geo.to_geojson(region.boundary) if region.boundary is not None else None,
        version=region.version,
    )


def parse_boundary(geojson: dict[str, Any] | None, field: str = "boundary") -> Any:
    if geojson is None:
        return None
    try:
        return geo.parse_geometry(geojson)
    except geo.GeometryError as exc:
        raise invalid(
            "invalid-geometry", f"{field}: {exc.detail}", field=field, location=exc.location
        ) from exc


def _check_within_parent(settings: Settings, boundary: Any, parent: Region, what: str) -> None:
    if boundary is None or parent.boundary is None:
        return
    outside = geo.outside_part(
        boundary, parent.boundary, settings.containment_tolerance_m, min_area_m2=1.0
    )
    if outside is not None:
        raise invalid(
            "outside-parent",
            f"{what} sticks out of its {parent.level} {parent.code} by about "
            f"{geo.area_m2(outside):.0f} m² (tolerance {settings.containment_tolerance_m} m)",
            parent_code=parent.code,
            outside=geo.to_geojson(outside),
        )


async def _check_siblings(
    session: AsyncSession,
    settings: Settings,
    boundary: Any,
    parent_code: str | None,
    own_code: str | None,
) -> None:
    if boundary is None:
        return
    siblings = (
        await session.scalars(
            select(Region).where(
                Region.parent_code == parent_code,
                Region.status == "active",
                Region.boundary.is_not(None),
            )
        )
    ).all()
    for sibling in siblings:
        if sibling.code == own_code:
            continue
        piece = geo.overlap(
            boundary,
            sibling.boundary,
            settings.overlap_tolerance_m,
            min_area_m2=settings.overlap_min_area_m2,
        )
        if piece is not None:
            raise conflict(
                "overlaps-sibling",
                f"boundary overlaps sibling {sibling.code} ({sibling.name}) by about "
                f"{geo.area_m2(piece):.0f} m²",
                sibling_code=sibling.code,
                overlap=geo.to_geojson(piece),
            )


async def create(
    session: AsyncSession, ctx: ServiceContext, principal: Principal, body: RegionCreate
) -> Region:
    """Create one region inside the caller's transaction (also used by bulk import)."""
    settings: Settings = ctx.settings  # type: ignore[assignment]
    level = codes.Level(body.level)
    parent: Region | None = None
    if level is not codes.Level.DISTRICT:
        if body.parent_code is None:
            raise invalid(
                "parent-required",
                f"a {body.level} needs parent_code (a {PARENT_LEVEL[body.level]})",
            )
        parent = await session.get(Region, body.parent_code)
        if parent is None:
            raise invalid("parent-not-found", f"parent region {body.parent_code} does not exist")
        if parent.status != "active":
            raise invalid("parent-retired", f"parent region {parent.code} is retired")
    principal.ensure_covers(body.parent_code or body.code)

    code = body.code
    try:
        if code is None:
            if parent is None:
                raise codes.CodeError("a district's code comes from GB/T 2260 and must be given")
            used = (
                await session.scalars(select(Region.code).where(Region.parent_code == parent.code))
            ).all()
            code = codes.next_free_code(parent.code, level, used, body.kind)
        else:
            codes.validate_child_code(body.parent_code, code, level, body.kind)
    except codes.CodeError as exc:
        raise invalid("invalid-code", str(exc)) from exc
    existing = await session.get(Region, code)
    if existing is not None:
        status = "retired (codes are never reused)" if existing.status == "retired" else "exists"
        raise conflict("code-taken", f"region {code} already {status}")

    boundary = parse_boundary(body.boundary)
    if parent is not None:
        _check_within_parent(settings, boundary, parent, f"{body.level} {code}")
    await _check_siblings(session, settings, boundary, body.parent_code, None)

    region = Region(
        code=code,
        level=body.level,
        kind=body.kind,
        name=body.name,
        parent_code=body.parent_code,
        status="active",
        grid_class=(body.grid_class or "regular") if body.level == "grid" else None,
        households=body.households,
        residents=body.residents,
        boundary=boundary,
        replaced_by=[],
        version=1,
    )
    session.add(region)
    await session.flush()
    ancestors = await ancestors_of(session, region)
    await ctx.publish(
        session,
        RegionCreated(**_state(region, ancestors)),
        subject=region.code,
        gridcode=region.code,
    )
    return region


async def update(
    ctx: ServiceContext, principal: Principal, code: str, body: RegionUpdate
) -> RegionOut:
    settings: Settings = ctx.settings  # type: ignore[assignment]
    principal.ensure_covers(code)
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        raise invalid("nothing-to-change", "give at least one field to change")
    async with ctx.db.transaction() as session:
        region = await _get(session, code)
        if region.status != "active":
            raise conflict("region-retired", f"region {code} is retired and cannot change")
        if "grid_class" in changes and region.level != "grid":
            raise invalid("not-a-grid", "grid_class applies to grids only")
        if "boundary" in changes:
            boundary = parse_boundary(body.boundary)
            if region.parent_code:
                parent = await _get(session, region.parent_code)
                _check_within_parent(settings, boundary, parent, f"{region.level} {code}")
            await _check_siblings(session, settings, boundary, region.parent_code, code)
            region.boundary = boundary
        for field in ("name", "grid_class", "households", "residents"):
            if field in changes:
                setattr(region, field, changes[field])
        region.version += 1
        region.updated_at = utcnow()
        ancestors = await ancestors_of(session, region)
        await ctx.publish(
            session,
            RegionUpdated(**_state(region, ancestors), changed=sorted(changes)),
            subject=code,
            gridcode=code,
        )
    directory(ctx).apply(info_of(region), region.boundary)
    return region_out(region, ancestors)


async def retire(
    session: AsyncSession,
    ctx: ServiceContext,
    principal: Principal,
    code: str,
    replaced_by: list[str],
) -> Region:
    principal.ensure_covers(code)
    region = await _get(session, code)
    if region.status == "retired":
        raise conflict("region-retired", f"region {code} is already retired")
    active_children = (
        await session.scalars(
            select(Region.code).where(Region.parent_code == code, Region.status == "active")
        )
    ).all()
    if active_children:
        raise conflict(
            "has-active-children",
            f"retire the active children first: {', '.join(active_children[:10])}",
            children=list(active_children),
        )
    for successor in replaced_by:
        if await session.get(Region, successor) is None:
            raise invalid("unknown-successor", f"replaced_by: region {successor} does not exist")
    region.status = "retired"
    region.replaced_by = list(replaced_by)
    region.retired_at = utcnow()
    region.version += 1
    ancestors = await ancestors_of(session, region)
    await ctx.publish(
        session,
        RegionRetired(**_state(region, ancestors), replaced_by=list(replaced_by)),
        subject=code,
        gridcode=code,
    )
    return region


async def _get(session: AsyncSession, code: str) -> Region:
    region = await session.get(Region, code)
    if region is None:
        raise not_found("region", code)
    return region


async def get(ctx: ServiceContext, code: str) -> RegionOut:
    async with ctx.db.sessions() as session:
        region = await _get(session, code)
        return region_out(region, await ancestors_of(session, region))


async def coverage_gaps(ctx: ServiceContext, code: str) -> dict[str, Any]:
    """The part of a region not covered by its active children, as a GeoJSON FeatureCollection."""
    settings: Settings = ctx.settings  # type: ignore[assignment]
    async with ctx.db.sessions() as session:
        region = await _get(session, code)
        if region.boundary is None:
            raise invalid("no-boundary", f"region {code} has no boundary to check coverage of")
        children = (
            await session.scalars(
                select(Region).where(Region.parent_code == code, Region.status == "active")
            )
        ).all()
    gap = geo.uncovered(
        region.boundary,
        [c.boundary for c in children if c.boundary is not None],
        tolerance_m=settings.gap_tolerance_m,
        min_area_m2=settings.gap_min_area_m2,
    )
    features = []
    if gap is not None:
        features.append(
            {
                "type": "Feature",
                "geometry": geo.to_geojson(gap),
                "properties": {
                    "parent_code": code,
                    "area_m2": round(geo.area_m2(gap), 1),
                    "kind": "uncovered",
                },
            }
        )
    total = geo.area_m2(region.boundary)
    uncovered_m2 = geo.area_m2(gap) if gap is not None else 0.0
    return {
        "type": "FeatureCollection",
        "features": features,
        "properties": {
            "code": code,
            "area_m2": round(total, 1),
            "uncovered_m2": round(uncovered_m2, 1),
            "covered_share": round(1 - uncovered_m2 / total, 6) if total else None,
        },
    }


def require_grid(region: Region) -> None:
    if region.level != "grid":
        raise Problem(422, "not-a-grid", f"region {region.code} is a {region.level}, not a grid")
