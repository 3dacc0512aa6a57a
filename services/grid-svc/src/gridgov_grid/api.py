"""HTTP routes of grid-svc (thin: validation and auth here, rules in ``hierarchy.py``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status

from gridgov_common.app import Ctx
from gridgov_common.auth import CurrentPrincipal, Principal, require_roles

from . import hierarchy
from .schemas import RegionCreate, RegionOut

router = APIRouter(prefix="/v1", tags=["regions"])
GridAdmin = Annotated[Principal, Depends(require_roles("admin", "grid_admin"))]


@router.post("/regions", status_code=status.HTTP_201_CREATED, response_model=RegionOut)
async def create_region(body: RegionCreate, ctx: Ctx, principal: GridAdmin) -> RegionOut:
    return await hierarchy.create_region(ctx, principal, body)


@router.get("/regions/{code}", response_model=RegionOut)
async def get_region(code: str, ctx: Ctx, principal: CurrentPrincipal) -> RegionOut:
    return await hierarchy.get_region(ctx, principal, code)
