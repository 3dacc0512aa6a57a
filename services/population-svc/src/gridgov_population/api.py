"""HTTP routes of population-svc (thin: the rules live in the domain modules)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, status
from sqlalchemy import select

from gridgov_common.app import Ctx
from gridgov_common.auth import Principal, require_roles

from . import (
    duplicates,
    employers,
    houses,
    permits,
    persons,
    points,
    registrations,
    rotation,
    staffing,
)
from .access import READ_ROLES, REVIEW_ROLES, WRITE_ROLES, audit, scope_filter
from .models import AuditEntry, DuplicateCandidate, House
from .schemas import (
    AuditOut,
    Departure,
    DuplicateDecision,
    DuplicateOut,
    EmployerCreate,
    EmploymentCreate,
    Endorse,
    HouseCreate,
    HouseUpdate,
    OutflowCreate,
    OutflowOut,
    Page,
    PermitApply,
    PersonCreate,
    PersonCreated,
    PersonSearch,
    PersonUpdate,
    PointsApply,
    QuotaIn,
    RegistrationCreate,
    ScoringTableIn,
)

Reader = Annotated[Principal, Depends(require_roles(*READ_ROLES))]
Writer = Annotated[Principal, Depends(require_roles(*WRITE_ROLES))]
Reviewer = Annotated[Principal, Depends(require_roles(*REVIEW_ROLES))]
Auditor = Annotated[Principal, Depends(require_roles("admin"))]
Limit = Annotated[int, Query(ge=1, le=200)]

router = APIRouter(prefix="/v1")


def page(items: list[Any], limit: int, key: str = "id") -> dict[str, Any]:
    more = len(items) > limit
    items = items[:limit]
    cursor = None
    if more and items:
        last = items[-1]
        cursor = last[key] if isinstance(last, dict) else getattr(last, key)
    return {"items": items, "next_cursor": cursor}


# --- persons ------------------------------------------------------------------------------


@router.post(
    "/persons",
    status_code=status.HTTP_201_CREATED,
    response_model=PersonCreated,
    tags=["persons"],
    summary="Register a person (ID validated, numbers encrypted); returns duplicate candidates",
)
async def create_person(body: PersonCreate, ctx: Ctx, principal: Writer) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        person, matches = await persons.create(ctx, session, principal, body)
        result = persons.to_out(ctx.settings, person)  # type: ignore[arg-type]
        result["duplicate_candidates"] = [duplicates.match_summary(m) for m in matches]
        return result


@router.get(
    "/persons/{person_id}",
    tags=["persons"],
    response_model=PersonCreated,
    summary="A person, masked; unmask=true with a purpose shows whole numbers (audited)",
)
async def get_person(
    person_id: str,
    ctx: Ctx,
    principal: Reader,
    unmask: bool = False,
    purpose: Annotated[str | None, Query(max_length=500)] = None,
) -> dict[str, Any]:
    return await persons.read(ctx, principal, person_id, unmask=unmask, purpose=purpose)


@router.patch("/persons/{person_id}", tags=["persons"], response_model=PersonCreated)
async def update_person(
    person_id: str, body: PersonUpdate, ctx: Ctx, principal: Writer
) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        person, matches = await persons.update(ctx, session, principal, person_id, body)
        reg = await persons.active_registration(session, person.id)
        result = persons.to_out(ctx.settings, person, registration=reg)  # type: ignore[arg-type]
        result["duplicate_candidates"] = [duplicates.match_summary(m) for m in matches]
        return result


@router.post(
    "/persons/search",
    tags=["persons"],
    summary="Find persons: at least two attributes or the whole ID number; bounded results",
)
async def search_persons(body: PersonSearch, ctx: Ctx, principal: Reader) -> dict[str, Any]:
    return {"items": await persons.search(ctx, principal, body), "next_cursor": None}


@router.get("/persons/{person_id}/registrations", tags=["registrations"], response_model=Page)
async def person_registrations(person_id: str, ctx: Ctx, principal: Reader) -> dict[str, Any]:
    async with ctx.db.sessions() as session:
        await persons.get_visible(session, principal, person_id)
        rows = await registrations.history(session, person_id)
    return {"items": [registrations.out(r) for r in rows], "next_cursor": None}


@router.get("/audit", tags=["audit"], response_model=Page, summary="The audit log (admin)")
async def audit_log(
    ctx: Ctx,
    principal: Auditor,
    entity_id: str | None = None,
    cursor: str | None = None,
    limit: Limit = 50,
) -> dict[str, Any]:
    stmt = select(AuditEntry).order_by(AuditEntry.id)
    if entity_id:
        stmt = stmt.where(AuditEntry.entity_id == entity_id)
    if cursor:
        stmt = stmt.where(AuditEntry.id > cursor)
    async with ctx.db.sessions() as session:
        rows = (await session.scalars(stmt.limit(limit + 1))).all()
    items = [AuditOut.model_validate(r, from_attributes=True).model_dump(mode="json") for r in rows]
    return page(items, limit)


# --- houses -------------------------------------------------------------------------------


@router.post("/houses", status_code=status.HTTP_201_CREATED, tags=["houses"])
async def create_house(body: HouseCreate, ctx: Ctx, principal: Writer) -> dict[str, Any]:
    return await houses.create(ctx, principal, body)


@router.get("/houses/{house_id}", tags=["houses"])
async def get_house(house_id: str, ctx: Ctx, principal: Reader) -> dict[str, Any]:
    async with ctx.db.sessions() as session:
        house = await houses.get_visible(session, principal, house_id)
        return await houses.to_out(session, house)


@router.patch("/houses/{house_id}", tags=["houses"])
async def update_house(
    house_id: str, body: HouseUpdate, ctx: Ctx, principal: Writer
) -> dict[str, Any]:
    return await houses.update(ctx, principal, house_id, body)


@router.get("/houses", tags=["houses"], response_model=Page)
async def list_houses(
    ctx: Ctx,
    principal: Reader,
    region: str | None = None,
    cursor: str | None = None,
    limit: Limit = 50,
) -> dict[str, Any]:
    stmt = select(House).order_by(House.id)
    scope = scope_filter(principal, House.grid_code, region)
    if scope is not None:
        stmt = stmt.where(scope)
    if cursor:
        stmt = stmt.where(House.id > cursor)
    async with ctx.db.sessions() as session:
        rows = (await session.scalars(stmt.limit(limit + 1))).all()
        items = [await houses.to_out(session, h) for h in rows]
    return page(items, limit)


# --- registrations ------------------------------------------------------------------------


@router.post(
    "/registrations",
    status_code=status.HTTP_201_CREATED,
    tags=["registrations"],
    summary="Register an arrival; closes the person's previous registration elsewhere",
)
async def register(body: RegistrationCreate, ctx: Ctx, principal: Writer) -> dict[str, Any]:
    return await registrations.register(ctx, principal, body)


@router.post(
    "/registrations/{registration_id}/departure",
    tags=["registrations"],
    summary="Deregister on leaving (closes the period)",
)
async def depart(
    registration_id: str, body: Departure, ctx: Ctx, principal: Writer
) -> dict[str, Any]:
    return await registrations.depart(ctx, principal, registration_id, body.departure_date)


@router.post(
    "/outflow-reports",
    status_code=status.HTTP_201_CREATED,
    response_model=OutflowOut,
    tags=["registrations"],
    summary="Report a resident registered here but living elsewhere (户在人不在)",
)
async def outflow(body: OutflowCreate, ctx: Ctx, principal: Writer) -> Any:
    report = await registrations.report_outflow(ctx, principal, body)
    return OutflowOut.model_validate(report, from_attributes=True)


# --- duplicates ---------------------------------------------------------------------------


@router.get("/duplicates", tags=["duplicates"], response_model=Page)
async def list_duplicates(
    ctx: Ctx,
    principal: Reviewer,
    status_: Annotated[str, Query(alias="status")] = "open",
    cursor: str | None = None,
    limit: Limit = 50,
) -> dict[str, Any]:
    stmt = select(DuplicateCandidate).where(DuplicateCandidate.status == status_)
    scope = scope_filter(principal, DuplicateCandidate.region_code)
    if scope is not None:
        stmt = stmt.where(scope)
    if cursor:
        stmt = stmt.where(DuplicateCandidate.id > cursor)
    async with ctx.db.sessions() as session:
        rows = (await session.scalars(stmt.order_by(DuplicateCandidate.id).limit(limit + 1))).all()
    items = [
        DuplicateOut.model_validate(r, from_attributes=True).model_dump(mode="json") for r in rows
    ]
    return page(items, limit)


@router.post(
    "/duplicates/{candidate_id}/decision",
    tags=["duplicates"],
    response_model=DuplicateOut,
    summary="Mark duplicate (merge into the survivor, audited) or not duplicate",
)
async def decide_duplicate(
    candidate_id: str, body: DuplicateDecision, ctx: Ctx, principal: Reviewer
) -> Any:
    async with ctx.db.transaction() as session:
        cand = await duplicates.decide(
            session, principal, candidate_id, body.decision, body.survivor_id, body.purpose
        )
        return DuplicateOut.model_validate(cand, from_attributes=True)


# --- residence permits --------------------------------------------------------------------


@router.post(
    "/permits",
    status_code=status.HTTP_201_CREATED,
    tags=["permits"],
    summary="Apply for and issue a residence permit (6 months' registration + evidence)",
)
async def apply_permit(body: PermitApply, ctx: Ctx, principal: Writer) -> dict[str, Any]:
    return await permits.apply(ctx, principal, body)


@router.get("/permits/{permit_id}", tags=["permits"])
async def get_permit(
    permit_id: str,
    ctx: Ctx,
    principal: Reader,
    unmask: bool = False,
    purpose: Annotated[str | None, Query(max_length=500)] = None,
) -> dict[str, Any]:
    return await permits.read(ctx, principal, permit_id, unmask, purpose)


@router.post(
    "/permits/{permit_id}/endorsements",
    tags=["permits"],
    summary="Annual endorsement (签注): within the month before the due date, or late",
)
async def endorse_permit(
    permit_id: str, body: Endorse, ctx: Ctx, principal: Writer
) -> dict[str, Any]:
    return await permits.endorse(ctx, principal, permit_id, body.on)


# --- employers ----------------------------------------------------------------------------


@router.post("/employers", status_code=status.HTTP_201_CREATED, tags=["employers"])
async def create_employer(body: EmployerCreate, ctx: Ctx, principal: Writer) -> dict[str, Any]:
    return await employers.create(ctx, principal, body)


@router.get("/employers/{employer_id}", tags=["employers"])
async def get_employer(employer_id: str, ctx: Ctx, principal: Reader) -> dict[str, Any]:
    async with ctx.db.sessions() as session:
        return employers.employer_out(await employers.get_visible(session, principal, employer_id))


@router.post(
    "/employers/{employer_id}/employees",
    status_code=status.HTTP_201_CREATED,
    tags=["employers"],
    summary="Add an employee to the roster",
)
async def add_employee(
    employer_id: str, body: EmploymentCreate, ctx: Ctx, principal: Writer
) -> dict[str, Any]:
    return await employers.hire(ctx, principal, employer_id, body)


@router.get(
    "/employers/{employer_id}/employees",
    tags=["employers"],
    response_model=Page,
    summary="Current roster; unregistered=true lists workers without an active registration",
)
async def list_employees(
    employer_id: str, ctx: Ctx, principal: Reader, unregistered: bool = False
) -> dict[str, Any]:
    items = await employers.roster(ctx, principal, employer_id, unregistered)
    return {"items": items, "next_cursor": None}


# --- staffing -----------------------------------------------------------------------------


@router.get(
    "/staffing",
    tags=["staffing"],
    summary="Floating residents per coordinator per grid against the norm (1:500)",
)
async def get_staffing(ctx: Ctx, principal: Reader, region: str | None = None) -> dict[str, Any]:
    return await staffing.report(ctx, principal, region)


# --- points -------------------------------------------------------------------------------

Admin = Annotated[Principal, Depends(require_roles("admin", "population_officer"))]


@router.post(
    "/points/tables",
    status_code=status.HTTP_201_CREATED,
    tags=["points"],
    summary="Publish a scoring table version (immutable)",
)
async def publish_table(body: ScoringTableIn, ctx: Ctx, principal: Admin) -> dict[str, Any]:
    return await points.publish_table(ctx, body)


@router.get("/points/tables/{version}", tags=["points"])
async def get_table(version: str, ctx: Ctx, principal: Reader) -> dict[str, Any]:
    return await points.get_table(ctx, version)


@router.put("/points/quotas", tags=["points"], summary="Set a year's quota per town and purpose")
async def put_quota(body: QuotaIn, ctx: Ctx, principal: Admin) -> dict[str, Any]:
    return await points.set_quota(ctx, principal, body)


@router.post("/points/applications", status_code=status.HTTP_201_CREATED, tags=["points"])
async def apply_points(body: PointsApply, ctx: Ctx, principal: Writer) -> dict[str, Any]:
    return await points.apply(ctx, principal, body)


@router.post("/points/applications/{application_id}/recompute", tags=["points"])
async def recompute_points(application_id: str, ctx: Ctx, principal: Reader) -> dict[str, Any]:
    return await points.recompute(ctx, principal, application_id)


@router.get("/points/rankings", tags=["points"])
async def get_ranking(
    ctx: Ctx, principal: Reader, year: int, town_code: str, purpose: str
) -> dict[str, Any]:
    return await points.ranking(ctx, principal, year, town_code, purpose)


# --- administration -----------------------------------------------------------------------


@router.post(
    "/admin/pii-key-rotation",
    tags=["administration"],
    summary="Re-encrypt every stored ID/phone number under the active key (audited)",
)
async def rotate_pii_keys(ctx: Ctx, principal: Auditor) -> dict[str, Any]:
    counts = await rotation.rotate(ctx)
    async with ctx.db.transaction() as session:
        audit(
            session,
            principal,
            "key_rotation",
            "pii",
            ctx.settings.pii_active_key,  # type: ignore[attr-defined]
            detail=counts,
        )
    return {"active_key": ctx.settings.pii_active_key, "rotated": counts}  # type: ignore[attr-defined]
