"""HTTP routes of grid-svc (thin: parsing and auth here, rules in the domain modules)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qsl

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy import select
from starlette.types import Receive, Scope, Send

from gridgov_common.app import Ctx, ServiceContext
from gridgov_common.auth import CurrentPrincipal, Principal, current_principal, require_roles
from gridgov_common.errors import invalid

from . import exchange, lookup, members, regions
from .models import Region
from .schemas import (
    CODE_PATTERN,
    BatchLocateIn,
    BatchLocateOut,
    GridSplit,
    LeaderGap,
    Level,
    LocateOut,
    LocateQuery,
    MemberCreate,
    MemberOut,
    RegionCreate,
    RegionOut,
    RegionPage,
    RegionRetire,
    RegionUpdate,
)

router = APIRouter(prefix="/v1")
GridAdmin = Annotated[Principal, Depends(require_roles("admin", "grid_admin"))]
Code = Annotated[str, Query(pattern=CODE_PATTERN)]
# A region code in the path: malformed is a 422, before any scope or existence check.
PathCode = Annotated[str, Path(pattern=CODE_PATTERN)]
Q = TypeVar("Q", bound=BaseModel)


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


def _parse_query(adapter: TypeAdapter[Q], request: Request) -> Q:
    """The query string as a model; errors as FastAPI reports query parameters (a 422)."""
    try:
        # parse_qsl as Starlette's QueryParams does (last value wins), without building one:
        # this is the hot path of GET /v1/locate. A dict validates faster than a mapping.
        query = request.scope["query_string"].decode("latin-1")
        return adapter.validate_python(dict(parse_qsl(query, keep_blank_values=True)))
    except ValidationError as exc:
        errors = [{**e, "loc": ("query", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(errors) from None


def _query_parameters(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI parameters for a flat query model (for routes that parse their own query)."""
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    return {
        "parameters": [
            {"name": name, "in": "query", "required": name in required, "schema": field}
            for name, field in schema["properties"].items()
        ]
    }


_LOCATE_QUERY = TypeAdapter(LocateQuery)


class DirectRoute(APIRoute):
    """A route whose endpoint takes the Request and returns the Response itself: documented
    like any route (``openapi_extra``, ``response_model``), served without FastAPI's
    dependency solving, response handling and per-route exception wrapper, which together
    cost more than a grid lookup. Its errors reach the app's handlers through Starlette's
    ExceptionMiddleware like any route's. FastAPI's documented extension point (a custom
    ``route_class``)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        handler: Callable[[Request], Coroutine[Any, Any, Response]] = endpoint

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            response = await handler(Request(scope, receive, send))
            await response(scope, receive, send)

        self.app = app


# Lookups first: routes are matched in order, and these are the ones called at rate.
async def locate(request: Request) -> Response:
    # Token and query are read here, not through FastAPI dependencies (see DirectRoute):
    # every other service calls this at rate. Same checks, same order (token first), same
    # errors.
    await current_principal(request)  # reads need any role
    query = _parse_query(_LOCATE_QUERY, request)
    ctx: ServiceContext = request.app.state.ctx
    return _json(lookup.locate(regions.directory(ctx), query.lon, query.lat, query.crs))


router.add_api_route(
    "/locate",
    locate,
    methods=["GET"],
    route_class_override=DirectRoute,
    response_model=LocateOut,
    tags=["lookup"],
    summary="The grid containing a point, with its ancestor chain",
    openapi_extra=_query_parameters(LocateQuery),
    responses={422: {"description": "Invalid query (problem+json)"}},
)


@router.post(
    "/locate/batch",
    response_model=BatchLocateOut,
    tags=["lookup"],
    summary="Locate up to 10,000 points at once",
)
async def locate_batch(body: BatchLocateIn, ctx: Ctx, principal: CurrentPrincipal) -> Response:
    limit: int = ctx.settings.max_batch_points  # type: ignore[attr-defined]
    return _json(await lookup.locate_batch(regions.directory(ctx), body.points, body.crs, limit))


@router.post(
    "/regions",
    status_code=status.HTTP_201_CREATED,
    response_model=RegionOut,
    tags=["regions"],
    summary="Create a district, street, community or grid",
)
async def create_region(body: RegionCreate, ctx: Ctx, principal: GridAdmin) -> RegionOut:
    async with ctx.db.transaction() as session:
        region = await regions.create(session, ctx, principal, body)
        out = regions.region_out(region, await regions.ancestors_of(session, region))
    regions.directory(ctx).apply(regions.info_of(region), region.boundary)
    return out


@router.get(
    "/regions",
    response_model=RegionPage,
    tags=["regions"],
    summary="List regions under a code prefix (cursor-paginated by code)",
)
async def list_regions(
    ctx: Ctx,
    principal: CurrentPrincipal,
    under: Annotated[str | None, Query(pattern=r"^\d{6,15}$")] = None,
    level: Level | None = None,
    status_: Annotated[str, Query(alias="status", pattern="^(active|retired|all)$")] = "active",
    cursor: Annotated[str | None, Query(pattern=r"^\d{6,15}$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    with_boundary: bool = False,
) -> RegionPage:
    query = select(Region).order_by(Region.code).limit(limit + 1)
    if under:
        query = query.where(Region.code.startswith(under))
    if level:
        query = query.where(Region.level == level)
    if status_ != "all":
        query = query.where(Region.status == status_)
    if cursor:
        query = query.where(Region.code > cursor)
    async with ctx.db.sessions() as session:
        rows = list((await session.scalars(query)).all())
        more = len(rows) > limit
        rows = rows[:limit]
        items = [
            regions.region_out(r, await regions.ancestors_of(session, r), with_boundary)
            for r in rows
        ]
    return RegionPage(items=items, next_cursor=rows[-1].code if more and rows else None)


@router.get("/regions/{code}", response_model=RegionOut, tags=["regions"])
async def get_region(code: PathCode, ctx: Ctx, principal: CurrentPrincipal) -> RegionOut:
    return await regions.get(ctx, code)


@router.patch(
    "/regions/{code}",
    response_model=RegionOut,
    tags=["regions"],
    summary="Change name, class, estimates or boundary (publishes the full new state)",
)
async def update_region(
    code: PathCode, body: RegionUpdate, ctx: Ctx, principal: GridAdmin
) -> RegionOut:
    return await regions.update(ctx, principal, code, body)


@router.post(
    "/regions/{code}/retire",
    response_model=RegionOut,
    tags=["regions"],
    summary="Retire a region; its code is kept and never reused",
)
async def retire_region(
    code: PathCode, body: RegionRetire, ctx: Ctx, principal: GridAdmin
) -> RegionOut:
    async with ctx.db.transaction() as session:
        region = await regions.retire(session, ctx, principal, code, body.replaced_by)
        out = regions.region_out(region, await regions.ancestors_of(session, region))
    regions.directory(ctx).apply(regions.info_of(region), region.boundary)
    return out


@router.post(
    "/regions/{code}/split",
    response_model=list[RegionOut],
    tags=["regions"],
    status_code=status.HTTP_201_CREATED,
    summary="Split a grid: retire it and create its successors in one step",
)
async def split_grid(
    code: PathCode, body: GridSplit, ctx: Ctx, principal: GridAdmin
) -> list[RegionOut]:
    return await exchange.split_grid(ctx, principal, code, body)


@router.get(
    "/regions/{code}/coverage",
    tags=["regions"],
    summary="Uncovered part of a region (GeoJSON gap report)",
)
async def coverage(code: PathCode, ctx: Ctx, principal: CurrentPrincipal) -> dict[str, Any]:
    return await regions.coverage_gaps(ctx, code)


@router.get(
    "/regions/{code}/export",
    tags=["import/export"],
    summary="A subtree as a GeoJSON FeatureCollection for a web map",
)
async def export(
    code: PathCode, ctx: Ctx, principal: CurrentPrincipal, include_retired: bool = False
) -> dict[str, Any]:
    return await exchange.export_subtree(ctx, code, include_retired)


@router.post(
    "/import",
    tags=["import/export"],
    summary="Bulk import a FeatureCollection of regions (all or nothing)",
)
async def import_regions(
    ctx: Ctx, principal: GridAdmin, collection: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    return await exchange.import_collection(ctx, principal, collection)


@router.post(
    "/grids/{code}/members",
    response_model=MemberOut,
    tags=["members"],
    status_code=status.HTTP_201_CREATED,
    summary="Assign a grid member (网格员)",
)
async def assign_member(
    code: PathCode, body: MemberCreate, ctx: Ctx, principal: GridAdmin
) -> MemberOut:
    return await members.assign(ctx, principal, code, body)


@router.get("/grids/{code}/members", response_model=list[MemberOut], tags=["members"])
async def list_members(
    code: PathCode, ctx: Ctx, principal: CurrentPrincipal, include_ended: bool = False
) -> list[MemberOut]:
    return await members.list_for_grid(ctx, principal, code, include_ended)


@router.delete(
    "/members/{member_id}",
    response_model=MemberOut,
    tags=["members"],
    summary="End a member's assignment (kept in history)",
)
async def remove_member(member_id: str, ctx: Ctx, principal: GridAdmin) -> MemberOut:
    return await members.remove(ctx, principal, member_id)


@router.get(
    "/gaps/leaders",
    response_model=list[LeaderGap],
    tags=["members"],
    summary="Active grids without an active leader (inside the caller's scopes)",
)
async def leader_gaps(
    ctx: Ctx,
    principal: CurrentPrincipal,
    under: Annotated[str | None, Query(pattern=r"^\d{6,15}$")] = None,
) -> list[LeaderGap]:
    if under is not None and len(under) % 3:
        raise invalid("invalid-code", "under must be a region code (6, 9, 12 or 15 digits)")
    return await members.leader_gaps(ctx, principal.visible_prefixes(under))
