"""Rules of the region hierarchy."""

from __future__ import annotations

from gridgov_common.app import ServiceContext
from gridgov_common.auth import Principal
from gridgov_common.errors import conflict, not_found
from gridgov_common.events.grid import RegionCreated, RegionRef

from .models import Region
from .schemas import RegionCreate, RegionOut

LEVELS = {6: "district", 9: "street", 12: "community", 15: "grid"}


def _out(region: Region) -> RegionOut:
    return RegionOut.model_validate(region, from_attributes=True)


async def create_region(ctx: ServiceContext, principal: Principal, body: RegionCreate) -> RegionOut:
    principal.ensure_covers(body.code)
    async with ctx.db.transaction() as session:
        if await session.get(Region, body.code) is not None:
            raise conflict("region-exists", f"region {body.code} already exists")
        region = Region(
            code=body.code,
            level=LEVELS[len(body.code)],
            name=body.name,
            parent_code=body.parent_code,
            status="active",
            version=1,
        )
        session.add(region)
        await session.flush()
        await ctx.publish(
            session,
            RegionCreated(
                code=region.code,
                level=region.level,
                name=region.name,  # type: ignore[arg-type]
                parent_code=region.parent_code,
                ancestors=[],
                status="active",
                version=1,
            ),
            subject=region.code,
            gridcode=region.code,
        )
        _ = RegionRef
        return _out(region)


async def get_region(ctx: ServiceContext, principal: Principal, code: str) -> RegionOut:
    async with ctx.db.sessions() as session:
        region = await session.get(Region, code)
    if region is None or not principal.covers(code):
        raise not_found("region", code)
    return _out(region)
