"""HTTP routes of notify-svc."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from gridgov_common.app import Ctx
from gridgov_common.auth import CurrentPrincipal
from gridgov_common.errors import not_found

from .models import KnownRegion

router = APIRouter(prefix="/v1", tags=["regions"])


class KnownRegionOut(BaseModel):
    code: str
    level: str
    name: str
    parent_code: str | None
    status: str
    version: int


@router.get(
    "/known-regions/{code}",
    response_model=KnownRegionOut,
    summary="A region as notify-svc's read model knows it (from grid.v1)",
)
async def get_known_region(code: str, ctx: Ctx, principal: CurrentPrincipal) -> KnownRegionOut:
    async with ctx.db.sessions() as session:
        region = await session.get(KnownRegion, code)
    if region is None or not principal.covers(code):
        raise not_found("region", code)
    return KnownRegionOut.model_validate(region, from_attributes=True)
