"""Bulk import and export of regions as GeoJSON, and splitting a grid into successors."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy import select

from gridgov_common.app import ServiceContext
from gridgov_common.auth import Principal
from gridgov_common.db import utcnow
from gridgov_common.errors import Problem, conflict, invalid
from gridgov_common.events.grid import RegionRetired

from . import geo
from .members import _end as end_membership
from .models import GridMember, Region
from .regions import _get, _state, ancestors_of, create, directory, info_of, require_grid
from .schemas import GridSplit, RegionCreate, RegionOut

MAX_IMPORT_FEATURES = 20_000
_LEVEL_ORDER = {"district": 0, "street": 1, "community": 2, "grid": 3}


async def import_collection(
    ctx: ServiceContext, principal: Principal, collection: dict[str, Any]
) -> dict[str, Any]:
    """All or nothing: every feature is checked, and any error rejects the whole import."""
    if collection.get("type") != "FeatureCollection" or not isinstance(
        collection.get("features"), list
    ):
        raise invalid(
            "not-a-feature-collection",
            "body must be a GeoJSON FeatureCollection with a 'features' array",
        )
    features = collection["features"]
    if len(features) > MAX_IMPORT_FEATURES:
        raise invalid(
            "import-too-large",
            f"{len(features)} features; an import takes at most {MAX_IMPORT_FEATURES}",
        )
    parsed: list[tuple[int, RegionCreate]] = []
    errors: list[dict[str, Any]] = []
    for i, feature in enumerate(features):
        try:
            if not isinstance(feature, dict) or feature.get("type") != "Feature":
                raise ValueError("not a GeoJSON Feature")
            props = dict(feature.get("properties") or {})
            props["boundary"] = feature.get("geometry")
            parsed.append((i, RegionCreate.model_validate(props)))
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            errors.append(
                {
                    "index": i,
                    "code": _code(feature),
                    "detail": f"{loc}: {first['msg']}" if loc else first["msg"],
                }
            )
        except ValueError as exc:
            errors.append({"index": i, "code": _code(feature), "detail": str(exc)})
    parsed.sort(key=lambda item: (_LEVEL_ORDER[item[1].level], item[0]))
    # Scope before anything else, as for a single region: a collection reaching outside the
    # caller's scopes is refused whole (403), not reported as one more invalid feature.
    outside = sorted(
        {
            target
            for _, body in parsed
            if not principal.covers(target := body.parent_code or body.code or "")
        }
    )
    if outside:
        raise Problem(
            403,
            "out-of-scope",
            f"the collection places regions under {', '.join(outside[:10])}, outside your "
            f"scopes ({', '.join(principal.scopes) or 'none'})",
        )

    created: list[Region] = []
    async with ctx.db.transaction() as session:
        for i, body in parsed:
            try:
                async with session.begin_nested():  # a failed feature leaves the rest intact
                    created.append(await create(session, ctx, principal, body))
            except Problem as exc:
                errors.append(
                    {"index": i, "code": body.code, "detail": exc.detail, "type": exc.slug}
                )
        if errors:  # raising rolls the whole transaction back, events included
            errors.sort(key=lambda e: e["index"])
            raise Problem(
                422,
                "import-rejected",
                f"{len(errors)} of {len(features)} features are invalid; nothing was imported",
                errors=errors,
            )
    for region in created:
        directory(ctx).apply(info_of(region), region.boundary)
    return {"imported": len(created), "codes": [r.code for r in created]}


def _code(feature: Any) -> str | None:
    if isinstance(feature, dict) and isinstance(feature.get("properties"), dict):
        code = feature["properties"].get("code")
        return code if isinstance(code, str) else None
    return None


async def export_subtree(ctx: ServiceContext, code: str, include_retired: bool) -> dict[str, Any]:
    async with ctx.db.sessions() as session:
        root = await _get(session, code)
        query = select(Region).where(Region.code.startswith(code)).order_by(Region.code)
        if not include_retired:
            query = query.where(Region.status == "active")
        regions = (await session.scalars(query)).all()
        ancestors = await ancestors_of(session, root)
    names = {a.code: a.name for a in ancestors} | {r.code: r.name for r in regions}
    features = []
    for r in regions:
        features.append(
            {
                "type": "Feature",
                "id": r.code,
                "geometry": geo.to_geojson(r.boundary) if r.boundary is not None else None,
                "properties": {
                    "code": r.code,
                    "level": r.level,
                    "name": r.name,
                    "parent_code": r.parent_code,
                    "parent_name": names.get(r.parent_code or ""),
                    "kind": r.kind,
                    "status": r.status,
                    "grid_class": r.grid_class,
                    "households": r.households,
                    "residents": r.residents,
                    "version": r.version,
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


async def split_grid(
    ctx: ServiceContext, principal: Principal, code: str, body: GridSplit
) -> list[RegionOut]:
    """Retire a grid and create its successors (codes allocated), in one transaction.

    The old grid's members are ended: the new grids need their own leaders (they show up in
    the leader gaps until assigned).
    """
    from .regions import region_out

    principal.ensure_covers(code)
    async with ctx.db.transaction() as session:
        old = await _get(session, code)
        require_grid(old)
        if old.status != "active":
            raise conflict("region-retired", f"grid {code} is already retired")
        old.status = "retired"  # first, so the successors may cover the same ground
        await session.flush()
        successors = []
        for i, part in enumerate(body.parts):
            try:
                successors.append(
                    await create(
                        session,
                        ctx,
                        principal,
                        RegionCreate(
                            level="grid",
                            parent_code=old.parent_code,
                            name=part.name,
                            grid_class=part.grid_class or old.grid_class,  # type: ignore[arg-type]
                            boundary=part.boundary,
                        ),
                    )
                )
            except Problem as exc:
                exc.detail = f"parts[{i}]: {exc.detail}"
                raise
        members = (
            await session.scalars(
                select(GridMember).where(
                    GridMember.grid_code == code, GridMember.ended_at.is_(None)
                )
            )
        ).all()
        for member in members:
            await end_membership(session, ctx, member)
        old.replaced_by = [s.code for s in successors]
        old.retired_at = utcnow()
        old.version += 1
        ancestors = await ancestors_of(session, old)
        await ctx.publish(
            session,
            RegionRetired(**_state(old, ancestors), replaced_by=old.replaced_by),
            subject=code,
            gridcode=code,
        )
        outs = [region_out(s, ancestors) for s in successors]
    for region in [old, *successors]:
        directory(ctx).apply(info_of(region), region.boundary)
    return outs
