"""HTTP routes of inspection-svc (thin: parsing and auth here, rules in the domain modules)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from pydantic import ValidationError
from sqlalchemy import select

from gridgov_common.app import Ctx
from gridgov_common.auth import CurrentPrincipal, Principal, require_roles
from gridgov_common.db import INT_MAX, region_filter, utcnow
from gridgov_common.errors import Problem, not_found

from . import catalogue, evaluation, hazards, inspections, venues
from . import status as status_mod
from .models import (
    Checkpoint,
    CheckTemplate,
    Hazard,
    HazardHistory,
    Inspection,
    InspectionPhoto,
    SpotCheck,
    Venue,
    VenueType,
)
from .schemas import (
    CheckpointIn,
    CheckpointOut,
    CheckpointPatch,
    HazardOut,
    HistoryOut,
    InspectionIn,
    InspectionOut,
    Page,
    RectificationIn,
    SpotCheckOut,
    SpotCheckSampleIn,
    TemplateIn,
    TemplateOut,
    VenueIn,
    VenueOut,
    VenuePatch,
    VenueTypeIn,
    VenueTypeOut,
)

router = APIRouter(prefix="/v1")
Admin = Annotated[Principal, Depends(require_roles("admin", "grid_admin"))]
Registrar = Annotated[
    Principal, Depends(require_roles("admin", "grid_admin", "inspector", "grid_member"))
]
Inspector = Annotated[Principal, Depends(require_roles("inspector", "grid_member", "admin"))]
Rectifier = Annotated[Principal, Depends(require_roles("department", "grid_admin", "admin"))]
Limit = Annotated[int, Query(ge=1, le=1000)]
Level = Literal["grid", "community", "street"]


def _region_filter(column: Any, principal: Principal, region: str | None) -> Any:
    return region_filter(column, principal.visible_prefixes(region))


# --- venue types & templates ---------------------------------------------------------------


@router.get("/venue-types", response_model=list[VenueTypeOut], tags=["catalogue"])
async def list_venue_types(ctx: Ctx, principal: CurrentPrincipal) -> list[VenueTypeOut]:
    async with ctx.db.sessions() as session:
        rows = (await session.scalars(select(VenueType).order_by(VenueType.code))).all()
    return [VenueTypeOut(code=r.code, name=r.name) for r in rows]


@router.post(
    "/venue-types",
    status_code=201,
    response_model=VenueTypeOut,
    tags=["catalogue"],
    summary="Add a venue type (with its version-1 check items)",
)
async def add_venue_type(body: VenueTypeIn, ctx: Ctx, principal: Admin) -> VenueTypeOut:
    async with ctx.db.transaction() as session:
        await venues.add_venue_type(session, principal, body)
    return VenueTypeOut(code=body.code, name=body.name)


@router.get(
    "/templates/{venue_type}",
    response_model=TemplateOut,
    tags=["catalogue"],
    summary="Check items of a venue type (latest, or ?version=)",
)
async def get_template(
    venue_type: str,
    ctx: Ctx,
    principal: CurrentPrincipal,
    version: Annotated[int | None, Query(ge=1, le=INT_MAX)] = None,
) -> TemplateOut:
    async with ctx.db.sessions() as session:
        if version is None:
            tpl = await catalogue.latest_template(session, venue_type)
        else:
            tpl = await session.get(CheckTemplate, (venue_type, version))
    if tpl is None:
        raise not_found("template", f"{venue_type} v{version or 'latest'}")
    return venues.template_out(tpl)


@router.put(
    "/templates/{venue_type}",
    response_model=TemplateOut,
    tags=["catalogue"],
    summary="Edit the check items: creates the next version",
)
async def put_template(
    venue_type: str, body: TemplateIn, ctx: Ctx, principal: Admin
) -> TemplateOut:
    async with ctx.db.transaction() as session:
        tpl = await venues.new_template_version(session, principal, venue_type, body)
    return venues.template_out(tpl)


# --- venues & checkpoints ------------------------------------------------------------------


@router.post(
    "/venues",
    status_code=201,
    response_model=VenueOut,
    tags=["venues"],
    summary="Register a venue; its grid is resolved through grid-svc",
)
async def register_venue(body: VenueIn, ctx: Ctx, principal: Registrar) -> VenueOut:
    return await venues.register_venue(ctx, principal, body)


@router.get("/venues", response_model=Page, tags=["venues"])
async def list_venues(
    ctx: Ctx,
    principal: CurrentPrincipal,
    region: str | None = None,
    venue_type: str | None = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> Page:
    q = (
        select(Venue)
        .where(_region_filter(Venue.grid_code, principal, region))
        .order_by(Venue.id)
        .limit(limit + 1)
    )
    if venue_type:
        q = q.where(Venue.venue_type == venue_type)
    if cursor:
        q = q.where(Venue.id > cursor)
    async with ctx.db.sessions() as session:
        rows = list((await session.scalars(q)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(
        items=[venues.venue_out(v) for v in rows], next_cursor=rows[-1].id if more else None
    )


@router.get("/venues/{venue_id}", response_model=VenueOut, tags=["venues"])
async def get_venue(venue_id: str, ctx: Ctx, principal: CurrentPrincipal) -> VenueOut:
    async with ctx.db.sessions() as session:
        v = await session.get(Venue, venue_id)
    if v is None or not principal.covers(v.grid_code):
        raise not_found("venue", venue_id)
    return venues.venue_out(v)


@router.patch(
    "/venues/{venue_id}",
    response_model=VenueOut,
    tags=["venues"],
    summary="Edit or move a venue (a move re-resolves its grid)",
)
async def patch_venue(venue_id: str, body: VenuePatch, ctx: Ctx, principal: Registrar) -> VenueOut:
    return await venues.update_venue(ctx, principal, venue_id, body)


@router.post(
    "/venues/{venue_id}/checkpoints",
    status_code=201,
    response_model=CheckpointOut,
    tags=["checkpoints"],
    summary="Add a tagged checkpoint to a venue",
)
async def add_checkpoint(
    venue_id: str, body: CheckpointIn, ctx: Ctx, principal: Registrar
) -> CheckpointOut:
    return await venues.add_checkpoint(ctx, principal, venue_id, body)


@router.get("/checkpoints", response_model=Page, tags=["checkpoints"])
async def list_checkpoints(
    ctx: Ctx,
    principal: CurrentPrincipal,
    region: str | None = None,
    venue_id: str | None = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> Page:
    q = (
        select(Checkpoint)
        .where(_region_filter(Checkpoint.grid_code, principal, region))
        .order_by(Checkpoint.id)
        .limit(limit + 1)
    )
    if venue_id:
        q = q.where(Checkpoint.venue_id == venue_id)
    if cursor:
        q = q.where(Checkpoint.id > cursor)
    async with ctx.db.sessions() as session:
        rows = list((await session.scalars(q)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    now = utcnow()
    return Page(
        items=[venues.checkpoint_out(c, now) for c in rows],
        next_cursor=rows[-1].id if more else None,
    )


@router.get("/checkpoints/{checkpoint_id}", response_model=CheckpointOut, tags=["checkpoints"])
async def get_checkpoint(
    checkpoint_id: str, ctx: Ctx, principal: CurrentPrincipal
) -> CheckpointOut:
    async with ctx.db.sessions() as session:
        c = await session.get(Checkpoint, checkpoint_id)
    if c is None or not principal.covers(c.grid_code):
        raise not_found("checkpoint", checkpoint_id)
    return venues.checkpoint_out(c)


@router.patch("/checkpoints/{checkpoint_id}", response_model=CheckpointOut, tags=["checkpoints"])
async def patch_checkpoint(
    checkpoint_id: str, body: CheckpointPatch, ctx: Ctx, principal: Admin
) -> CheckpointOut:
    return await venues.update_checkpoint(ctx, principal, checkpoint_id, body)


# --- inspections ---------------------------------------------------------------------------


@router.post(
    "/inspections",
    status_code=201,
    response_model=InspectionOut,
    tags=["inspections"],
    summary="Submit an inspection (multipart: `inspection` JSON part + `photos` files)",
)
async def submit_inspection(
    ctx: Ctx,
    principal: Inspector,
    inspection: Annotated[str, Form(description="InspectionIn as JSON")],
    photos: Annotated[list[UploadFile], File()] = [],  # noqa: B006
) -> InspectionOut:
    try:
        body = InspectionIn.model_validate_json(inspection)
    except ValidationError as exc:
        # Reported like any other body field (the same problem shape and `errors[]`).
        errors = [{**e, "loc": ("body", "inspection", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(errors) from None
    return await inspections.submit(ctx, principal, body, photos)


@router.get(
    "/inspections",
    response_model=Page,
    tags=["inspections"],
    summary="A checkpoint's inspections, newest first, with their photo hashes",
)
async def list_inspections(
    ctx: Ctx,
    principal: CurrentPrincipal,
    checkpoint_id: str,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> Page:
    async with ctx.db.sessions() as session:
        c = await session.get(Checkpoint, checkpoint_id)
        if c is None or not principal.covers(c.grid_code):
            raise not_found("checkpoint", checkpoint_id)
        rows = (
            await session.scalars(
                select(Inspection)
                .where(Inspection.checkpoint_id == checkpoint_id)
                .order_by(Inspection.created_at.desc(), Inspection.id.desc())
                .limit(limit)
            )
        ).all()
        photos: dict[str, list[str]] = {}
        if rows:
            for inspection_id, sha in (
                await session.execute(
                    select(InspectionPhoto.inspection_id, InspectionPhoto.sha256).where(
                        InspectionPhoto.inspection_id.in_([i.id for i in rows])
                    )
                )
            ).all():
                photos.setdefault(inspection_id, []).append(sha)
    return Page(items=[inspections.inspection_out(i, photos.get(i.id, [])) for i in rows])


@router.get("/inspections/{inspection_id}", response_model=InspectionOut, tags=["inspections"])
async def get_inspection(
    inspection_id: str, ctx: Ctx, principal: CurrentPrincipal
) -> InspectionOut:
    async with ctx.db.sessions() as session:
        i = await session.get(Inspection, inspection_id)
        if i is None or not principal.covers(i.grid_code):
            raise not_found("inspection", inspection_id)
        photos = (
            await session.scalars(
                select(InspectionPhoto.sha256).where(InspectionPhoto.inspection_id == i.id)
            )
        ).all()
    return inspections.inspection_out(i, list(photos))


@router.get("/photos/{sha256}", tags=["inspections"], response_class=FileResponse)
async def get_photo(sha256: str, ctx: Ctx, principal: CurrentPrincipal) -> FileResponse:
    async with ctx.db.sessions() as session:
        row = await session.get(InspectionPhoto, sha256)
        insp = await session.get(Inspection, row.inspection_id) if row else None
    if row is None or insp is None or not principal.covers(insp.grid_code):
        raise not_found("photo", sha256)
    return FileResponse(ctx.state["photos"].path(sha256), media_type=row.content_type)


# --- hazards -------------------------------------------------------------------------------


def _hazard_out(h: Hazard, history: list[HazardHistory] | None = None) -> HazardOut:
    out = HazardOut.model_validate(h, from_attributes=True)
    if history is not None:
        out.history = [HistoryOut.model_validate(x, from_attributes=True) for x in history]
    return out


@router.get("/hazards", response_model=Page, tags=["hazards"])
async def list_hazards(
    ctx: Ctx,
    principal: CurrentPrincipal,
    region: str | None = None,
    state: str | None = None,
    checkpoint_id: str | None = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> Page:
    q = (
        select(Hazard)
        .where(_region_filter(Hazard.grid_code, principal, region))
        .order_by(Hazard.id)
        .limit(limit + 1)
    )
    if state == "unclosed":
        q = q.where(Hazard.state.in_(hazards.OPEN_STATES))
    elif state:
        q = q.where(Hazard.state == state)
    if checkpoint_id:
        q = q.where(Hazard.checkpoint_id == checkpoint_id)
    if cursor:
        q = q.where(Hazard.id > cursor)
    async with ctx.db.sessions() as session:
        rows = list((await session.scalars(q)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(items=[_hazard_out(h) for h in rows], next_cursor=rows[-1].id if more else None)


@router.get(
    "/hazards/{hazard_id}",
    response_model=HazardOut,
    tags=["hazards"],
    summary="A hazard with its full history (who, when, why)",
)
async def get_hazard(hazard_id: str, ctx: Ctx, principal: CurrentPrincipal) -> HazardOut:
    async with ctx.db.sessions() as session:
        h = await session.get(Hazard, hazard_id)
        if h is None or not principal.covers(h.grid_code):
            raise not_found("hazard", hazard_id)
        history = list(
            (
                await session.scalars(
                    select(HazardHistory)
                    .where(HazardHistory.hazard_id == h.id)
                    .order_by(HazardHistory.id)
                )
            ).all()
        )
    return _hazard_out(h, history)


@router.post(
    "/hazards/{hazard_id}/rectification",
    response_model=HazardOut,
    tags=["hazards"],
    summary="Report the hazard rectified (a department or the venue via its officer)",
)
async def report_rectification(
    hazard_id: str, body: RectificationIn, ctx: Ctx, principal: Rectifier
) -> HazardOut:
    async with ctx.db.transaction() as session:
        h = await session.get(Hazard, hazard_id)
        if h is None or not principal.covers(h.grid_code):
            raise not_found("hazard", hazard_id)
        await hazards.transition(
            session,
            ctx,
            h,
            "rectification_reported",
            actor=principal.subject,
            reason=body.note,
            at=utcnow(),
        )
    return _hazard_out(h)


# --- map & status --------------------------------------------------------------------------


@router.get(
    "/map/checkpoints",
    tags=["map"],
    summary="Checkpoints as a GeoJSON FeatureCollection with status and colour",
)
async def map_checkpoints(
    ctx: Ctx,
    principal: CurrentPrincipal,
    region: str | None = None,
    status: Literal["green", "yellow", "red"] | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 5000,
) -> dict[str, Any]:
    async with ctx.db.sessions() as session:
        return await status_mod.map_features(
            session, principal.visible_prefixes(region), status, limit, cursor, utcnow()
        )


@router.get(
    "/map/aggregates",
    tags=["map"],
    summary="Counts by status, missed rate and open hazards per grid/community/street",
)
async def map_aggregates(
    ctx: Ctx, principal: CurrentPrincipal, level: Level = "grid", region: str | None = None
) -> dict[str, Any]:
    async with ctx.db.sessions() as session:
        items = await status_mod.aggregates(
            session, principal.visible_prefixes(region), level, utcnow()
        )
    return {"items": items, "next_cursor": None}


@router.post(
    "/status/sweep",
    tags=["map"],
    summary="Run one status/miss/overdue sweep now (admin; the worker runs it anyway)",
)
async def run_sweep(ctx: Ctx, principal: Admin) -> dict[str, int]:
    return await status_mod.sweep(ctx)


# --- evaluation & spot checks ----------------------------------------------------------------


@router.get("/evaluation/inspectors", tags=["evaluation"])
async def evaluate_inspectors(
    ctx: Ctx,
    principal: CurrentPrincipal,
    since: datetime,
    until: datetime,
    region: str | None = None,
) -> dict[str, Any]:
    _aware(since, until)
    async with ctx.db.sessions() as session:
        items = await evaluation.inspectors(
            session, since, until, principal.visible_prefixes(region)
        )
    return {"items": items, "next_cursor": None}


@router.get("/evaluation/regions", tags=["evaluation"])
async def evaluate_regions(
    ctx: Ctx,
    principal: CurrentPrincipal,
    since: datetime,
    until: datetime,
    level: Level = "grid",
    region: str | None = None,
) -> dict[str, Any]:
    _aware(since, until)
    async with ctx.db.sessions() as session:
        items = await evaluation.regions(
            session, since, until, level, principal.visible_prefixes(region)
        )
    return {"items": items, "next_cursor": None}


@router.post(
    "/spot-checks/sample",
    status_code=201,
    response_model=list[SpotCheckOut],
    tags=["evaluation"],
    summary="Sample passed inspections for re-inspection (抽查)",
)
async def sample_spot_checks(
    body: SpotCheckSampleIn, ctx: Ctx, principal: Admin
) -> list[SpotCheckOut]:
    _aware(body.since, body.until)
    async with ctx.db.transaction() as session:
        checks = await evaluation.sample_spot_checks(
            session,
            body.since,
            body.until,
            body.inspectors,
            body.share or ctx.settings.spot_check_share,  # type: ignore[attr-defined]
            principal.visible_prefixes(body.region),
            body.seed,
        )
    return [SpotCheckOut.model_validate(c, from_attributes=True) for c in checks]


@router.get("/spot-checks", response_model=Page, tags=["evaluation"])
async def list_spot_checks(
    ctx: Ctx,
    principal: CurrentPrincipal,
    assigned_to: str | None = None,
    state: str | None = None,
    region: str | None = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> Page:
    q = (
        select(SpotCheck)
        .where(_region_filter(SpotCheck.grid_code, principal, region))
        .order_by(SpotCheck.id)
        .limit(limit + 1)
    )
    if assigned_to:
        q = q.where(SpotCheck.assigned_inspector == assigned_to)
    if state:
        q = q.where(SpotCheck.state == state)
    if cursor:
        q = q.where(SpotCheck.id > cursor)
    async with ctx.db.sessions() as session:
        rows = list((await session.scalars(q)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(
        items=[SpotCheckOut.model_validate(c, from_attributes=True) for c in rows],
        next_cursor=rows[-1].id if more else None,
    )


def _aware(*values: datetime) -> None:
    for v in values:
        if v.tzinfo is None:
            raise Problem(422, "naive-datetime", "times need a UTC offset (e.g. 2026-01-01T00:00Z)")
