"""HTTP routes of notify-svc (thin: the rules live in the domain modules)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sse_starlette.sse import EventSourceResponse

from gridgov_common.app import Ctx
from gridgov_common.auth import CurrentPrincipal, Principal, require_roles
from gridgov_common.db import BIGINT_MAX, region_filter, utcnow
from gridgov_common.errors import Problem, invalid, not_found

from . import departments as deps
from . import dispatches as dsp
from . import rules as rls
from .escalation import calendar_of
from .evaluation import evaluate
from .models import Case, Department, Dispatch, DispatchLog, KnownRegion, RoutingRule, UnroutedEvent
from .schemas import (
    DepartmentIn,
    DepartmentOut,
    DepartmentPatch,
    FeedbackIn,
    Page,
    RuleIn,
    RuleOut,
    SecretIn,
    SecretOut,
)

router = APIRouter(prefix="/v1")

Admin = Annotated[Principal, Depends(require_roles("admin", "grid_admin"))]
Reader = Annotated[
    Principal,
    Depends(require_roles("admin", "grid_admin", "viewer", "department", "service", "reviewer")),
]
DeptUser = Annotated[Principal, Depends(require_roles("admin", "department"))]
Limit = Annotated[int, Query(ge=1, le=500)]
# A region code (district to grid); a filter on anything else matches nothing by accident.
REGION_CODE = r"^[0-9]{6,15}$"
RegionCode = Annotated[str, Query(pattern=REGION_CODE)]
# In the path: malformed is a 422, before any scope or existence check.
PathRegionCode = Annotated[str, Path(pattern=REGION_CODE)]


class KnownRegionOut(BaseModel):
    code: str
    level: str
    name: str
    parent_code: str | None
    status: str
    grid_class: str | None = None
    version: int


@router.get(
    "/known-regions/{code}",
    response_model=KnownRegionOut,
    tags=["regions"],
    summary="A region as notify-svc's read model knows it (from grid.v1)",
)
async def get_known_region(
    code: PathRegionCode, ctx: Ctx, principal: CurrentPrincipal
) -> KnownRegionOut:
    principal.ensure_covers(code)  # a region code the caller names: 403 whether it exists or not
    async with ctx.db.sessions() as session:
        region = await session.get(KnownRegion, code)
    if region is None:
        raise not_found("region", code)
    return KnownRegionOut.model_validate(region, from_attributes=True)


# --- departments ---------------------------------------------------------------------------


def department_out(d: Department) -> DepartmentOut:
    return DepartmentOut(
        id=d.id,
        name=d.name,
        type=d.type,
        jurisdictions=list(d.jurisdictions),
        parent_id=d.parent_id,
        webhook=(
            {"url": d.webhook_url, "secrets": deps.public_secrets(d)}  # type: ignore[arg-type]
            if d.webhook_url
            else None
        ),
        sse_enabled=d.sse_enabled,
        active=d.active,
        version=d.version,
        created_at=d.created_at,
    )


# Roles that oversee dispatches of every department, within their region scopes; anyone else
# (a department's own user) sees only their department's dispatches.
OVERSEER_ROLES = ("admin", "grid_admin", "viewer", "service", "reviewer")


def ensure_can_see_department(
    principal: Principal, dept: Department | None, dept_id: str
) -> Department:
    if dept is None:
        raise not_found("department", dept_id)
    if principal.has_role(*OVERSEER_ROLES):
        # All, not any: a department reaching beyond the caller's scopes would let them read
        # its stream (dispatches elsewhere) or redirect its webhook.
        if all(principal.covers(p) for p in dept.jurisdictions):
            return dept
    elif principal.department_id == dept.id:
        return dept
    raise not_found("department", dept_id)


@router.post(
    "/departments",
    status_code=201,
    response_model=DepartmentOut,
    tags=["departments"],
    summary="Create a department with its jurisdictions, parent and channels",
)
async def create_department(
    body: DepartmentIn, ctx: Ctx, principal: Admin, response: Response
) -> DepartmentOut:
    prefixes = deps.validate_jurisdictions(body.jurisdictions)
    for p in prefixes:
        principal.ensure_covers(p)
    if body.webhook:
        deps.validate_secret(body.webhook.secret)
    now = utcnow()
    async with ctx.db.transaction() as session:
        dept_id = body.id or f"dep_{uuid.uuid4().hex[:16]}"
        if await session.get(Department, dept_id) is not None:
            raise Problem(409, "department-exists", f"department {dept_id} already exists")
        await deps.ensure_parent_ok(session, dept_id, body.parent_id)
        dept = Department(
            id=dept_id,
            name=body.name,
            type=body.type,
            jurisdictions=prefixes,
            parent_id=body.parent_id,
            webhook_url=str(body.webhook.url) if body.webhook else None,
            webhook_secrets=[],
            sse_enabled=body.sse_enabled,
            active=True,
            version=1,
            created_at=now,
            updated_at=now,
        )
        if body.webhook:
            deps.add_secret(dept, body.webhook.secret, now)
        session.add(dept)
    response.headers["Location"] = f"/v1/departments/{dept_id}"
    return department_out(dept)


@router.get(
    "/departments",
    response_model=Page,
    tags=["departments"],
    summary="Departments, optionally of one type or covering one grid",
)
async def list_departments(
    ctx: Ctx,
    principal: Reader,
    type: str | None = None,
    covering: RegionCode | None = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> Page:
    async with ctx.db.sessions() as session:
        q = select(Department).order_by(Department.id)
        if type:
            q = q.where(Department.type == type)
        if cursor:
            q = q.where(Department.id > cursor)
        rows = list((await session.scalars(q)).all())
    visible = []
    for d in rows:
        try:
            ensure_can_see_department(principal, d, d.id)
        except Problem:
            continue
        if covering and deps.matching_prefix(d, covering) is None:
            continue
        visible.append(d)
    page = visible[:limit]
    nxt = page[-1].id if len(visible) > limit else None
    return Page(items=[department_out(d) for d in page], next_cursor=nxt)


@router.get("/departments/{dept_id}", response_model=DepartmentOut, tags=["departments"])
async def get_department(dept_id: str, ctx: Ctx, principal: Reader) -> DepartmentOut:
    async with ctx.db.sessions() as session:
        dept = ensure_can_see_department(principal, await session.get(Department, dept_id), dept_id)
    return department_out(dept)


@router.patch(
    "/departments/{dept_id}",
    response_model=DepartmentOut,
    tags=["departments"],
    summary="Change a department (jurisdictions, parent, webhook URL, active)",
)
async def patch_department(
    dept_id: str, body: DepartmentPatch, ctx: Ctx, principal: Admin
) -> DepartmentOut:
    async with ctx.db.transaction() as session:
        dept = ensure_can_see_department(principal, await session.get(Department, dept_id), dept_id)
        fields = body.model_fields_set
        if "name" in fields and body.name:
            dept.name = body.name
        if "type" in fields and body.type:
            dept.type = body.type
        if "jurisdictions" in fields and body.jurisdictions is not None:
            prefixes = deps.validate_jurisdictions(body.jurisdictions)
            for p in prefixes:
                principal.ensure_covers(p)
            dept.jurisdictions = prefixes
        if "parent_id" in fields:
            await deps.ensure_parent_ok(session, dept.id, body.parent_id)
            dept.parent_id = body.parent_id
        if body.remove_webhook:
            dept.webhook_url = None
        elif "webhook_url" in fields and body.webhook_url is not None:
            if not dept.webhook_secrets:
                raise invalid(
                    "webhook-secret-required",
                    "add a webhook secret (POST .../webhook-secrets) before setting a URL",
                )
            dept.webhook_url = str(body.webhook_url)
        if "sse_enabled" in fields and body.sse_enabled is not None:
            dept.sse_enabled = body.sse_enabled
        if "active" in fields and body.active is not None:
            dept.active = body.active
        dept.version += 1
    return department_out(dept)


@router.post(
    "/departments/{dept_id}/webhook-secrets",
    status_code=201,
    response_model=SecretOut,
    tags=["departments"],
    summary="Rotate: add a webhook secret; the newest two stay valid at once",
)
async def add_webhook_secret(dept_id: str, body: SecretIn, ctx: Ctx, principal: Admin) -> SecretOut:
    async with ctx.db.transaction() as session:
        dept = ensure_can_see_department(principal, await session.get(Department, dept_id), dept_id)
        entry = deps.add_secret(dept, body.secret, utcnow())
        dept.version += 1
    return SecretOut(
        id=entry["id"], created_at=entry["created_at"], fingerprint=deps.fingerprint(body.secret)
    )


@router.delete(
    "/departments/{dept_id}/webhook-secrets/{secret_id}",
    status_code=204,
    tags=["departments"],
    summary="Retire a webhook secret after rotation",
)
async def delete_webhook_secret(
    dept_id: str, secret_id: str, ctx: Ctx, principal: Admin
) -> Response:
    async with ctx.db.transaction() as session:
        dept = ensure_can_see_department(principal, await session.get(Department, dept_id), dept_id)
        deps.remove_secret(dept, secret_id)
        dept.version += 1
    return Response(status_code=204)


@router.get(
    "/departments/{dept_id}/evaluation",
    tags=["evaluation"],
    summary="Received, acknowledged within SLA, median/p90 times, escalations, re-routes, failures",
)
async def department_evaluation(
    dept_id: str,
    ctx: Ctx,
    principal: Reader,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: datetime | None = None,
) -> dict[str, Any]:
    end = to or utcnow()
    start = from_ or end - timedelta(days=30)
    if start.tzinfo is None or end.tzinfo is None:
        raise invalid("naive-datetime", "from and to need a time zone, e.g. 2026-11-01T00:00:00Z")
    if start >= end:
        raise invalid("empty-period", "from must be before to")
    async with ctx.db.sessions() as session:
        ensure_can_see_department(principal, await session.get(Department, dept_id), dept_id)
        return await evaluate(session, dept_id, start, end)


@router.get(
    "/departments/{dept_id}/stream",
    tags=["departments"],
    summary="Server-sent events of the department's dispatches; resumes after Last-Event-ID",
)
async def department_stream(
    dept_id: str,
    request: Request,
    ctx: Ctx,
    principal: Reader,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    after: int | None = Query(
        default=None,
        ge=0,
        le=BIGINT_MAX,
        description="resume after this event id (as Last-Event-ID)",
    ),
) -> EventSourceResponse:
    async with ctx.db.sessions() as session:
        ensure_can_see_department(principal, await session.get(Department, dept_id), dept_id)
    start = after if after is not None else 0
    if last_event_id:
        if not (last_event_id.isdecimal() and int(last_event_id) <= BIGINT_MAX):
            raise invalid(
                "invalid-last-event-id", "Last-Event-ID must be an event id from this stream"
            )
        start = int(last_event_id)
    poll = getattr(ctx.settings, "sse_poll_seconds", 0.25)

    async def events() -> AsyncIterator[dict[str, Any]]:
        seq = start
        while True:
            async with ctx.db.sessions() as session:
                rows = (
                    await session.scalars(
                        select(DispatchLog)
                        .where(DispatchLog.department_id == dept_id, DispatchLog.seq > seq)
                        .order_by(DispatchLog.seq)
                        .limit(200)
                    )
                ).all()
            for row in rows:
                seq = row.seq
                yield {
                    "id": str(row.seq),
                    "event": "dispatch.state_changed",
                    "data": json.dumps(row.data, ensure_ascii=False),
                }
            if not rows:
                if await request.is_disconnected():
                    return
                await asyncio.sleep(poll)

    return EventSourceResponse(events(), ping=15)


# --- routing rules -------------------------------------------------------------------------


def rule_out(r: RoutingRule) -> RuleOut:
    return RuleOut.model_validate(r, from_attributes=True)


@router.get(
    "/routing-rules", response_model=Page, tags=["routing"], summary="Current routing rules"
)
async def list_rules(ctx: Ctx, principal: Reader, event_type: str | None = None) -> Page:
    async with ctx.db.sessions() as session:
        rules = await rls.current_rules(session, event_type)
    return Page(items=[rule_out(r) for r in rules], next_cursor=None)


@router.get("/routing-rules/{rule_id}/versions", response_model=Page, tags=["routing"])
async def rule_versions(rule_id: str, ctx: Ctx, principal: Reader) -> Page:
    async with ctx.db.sessions() as session:
        rows = (
            await session.scalars(
                select(RoutingRule)
                .where(RoutingRule.rule_id == rule_id)
                .order_by(RoutingRule.version)
            )
        ).all()
    if not rows:
        raise not_found("routing rule", rule_id)
    return Page(items=[rule_out(r) for r in rows], next_cursor=None)


@router.post(
    "/routing-rules",
    status_code=201,
    response_model=RuleOut,
    tags=["routing"],
    summary="Create a routing rule (version 1)",
)
async def create_rule(
    body: RuleIn, ctx: Ctx, principal: Annotated[Principal, Depends(require_roles("admin"))]
) -> RuleOut:
    rule_id = body.rule_id or f"rule-{uuid.uuid4().hex[:10]}"
    async with ctx.db.transaction() as session:
        exists = await session.scalar(
            select(RoutingRule.rule_id).where(RoutingRule.rule_id == rule_id).limit(1)
        )
        if exists:
            raise Problem(
                409,
                "rule-exists",
                f"rule {rule_id} exists; PUT /v1/routing-rules/{rule_id} to change it",
            )
        rule = await rls.save_version(
            session, rule_id, body.model_dump(exclude={"rule_id"}), principal.subject
        )
    return rule_out(rule)


@router.put(
    "/routing-rules/{rule_id}",
    response_model=RuleOut,
    tags=["routing"],
    summary="Change a rule: writes a new version, older versions stay for the record",
)
async def update_rule(
    rule_id: str,
    body: RuleIn,
    ctx: Ctx,
    principal: Annotated[Principal, Depends(require_roles("admin"))],
) -> RuleOut:
    async with ctx.db.transaction() as session:
        exists = await session.scalar(
            select(RoutingRule.rule_id).where(RoutingRule.rule_id == rule_id).limit(1)
        )
        if not exists:
            raise not_found("routing rule", rule_id)
        rule = await rls.save_version(
            session, rule_id, body.model_dump(exclude={"rule_id"}), principal.subject
        )
    return rule_out(rule)


# --- dispatches and cases ----------------------------------------------------------------


def visible_dispatch(principal: Principal, d: Dispatch, grid_code: str | None) -> bool:
    if principal.has_role(*OVERSEER_ROLES):
        return principal.covers(grid_code)
    return principal.department_id == d.department_id


async def _visible_dispatch(
    session: AsyncSession, principal: Principal, dispatch_id: str
) -> Dispatch:
    d = await session.get(Dispatch, dispatch_id)
    case = await session.get(Case, d.case_id) if d is not None else None
    if d is None or not visible_dispatch(principal, d, case.grid_code if case else None):
        raise not_found("dispatch", dispatch_id)
    return d


@router.get(
    "/dispatches",
    response_model=Page,
    tags=["dispatches"],
    summary="Dispatches (a department user sees only its own)",
)
async def list_dispatches(
    ctx: Ctx,
    principal: Reader,
    department_id: str | None = None,
    state: str | None = None,
    case_id: str | None = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> Page:
    async with ctx.db.sessions() as session:
        q = select(Dispatch, Department).join(Department, Department.id == Dispatch.department_id)
        if principal.has_role(*OVERSEER_ROLES):
            q = q.join(Case, Case.id == Dispatch.case_id).where(
                region_filter(Case.grid_code, principal.visible_prefixes())
            )
        else:
            department_id = principal.department_id or "-"
        if department_id:
            q = q.where(Dispatch.department_id == department_id)
        if state:
            q = q.where(Dispatch.state == state)
        if case_id:
            q = q.where(Dispatch.case_id == case_id)
        if cursor:
            q = q.where(Dispatch.id > cursor)
        rows = (await session.execute(q.order_by(Dispatch.id).limit(limit + 1))).all()
    page = rows[:limit]
    return Page(
        items=[dsp.dispatch_view(d, dept) for d, dept in page],
        next_cursor=page[-1][0].id if len(rows) > limit else None,
    )


@router.get("/dispatches/{dispatch_id}", tags=["dispatches"])
async def get_dispatch(dispatch_id: str, ctx: Ctx, principal: Reader) -> dict[str, Any]:
    async with ctx.db.sessions() as session:
        d = await _visible_dispatch(session, principal, dispatch_id)
        dept = await session.get(Department, d.department_id)
        return dsp.dispatch_view(d, dept)


@router.get("/dispatches/{dispatch_id}/history", tags=["dispatches"], summary="Every transition")
async def dispatch_history(dispatch_id: str, ctx: Ctx, principal: Reader) -> Page:
    async with ctx.db.sessions() as session:
        await _visible_dispatch(session, principal, dispatch_id)
        rows = (
            await session.scalars(
                select(DispatchLog)
                .where(DispatchLog.dispatch_id == dispatch_id)
                .order_by(DispatchLog.seq)
            )
        ).all()
    return Page(items=[r.data for r in rows], next_cursor=None)


@router.post(
    "/dispatches/{dispatch_id}/ack",
    tags=["dispatches"],
    summary="Acknowledge a dispatch (as its department)",
)
async def ack_dispatch(dispatch_id: str, ctx: Ctx, principal: DeptUser) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        d = await dsp.load_for_department(session, dispatch_id, principal)
        d = await dsp.acknowledge(session, d, principal.subject, utcnow())
        dept = await session.get(Department, d.department_id)
        return dsp.dispatch_view(d, dept)


@router.post(
    "/dispatches/{dispatch_id}/feedback",
    tags=["dispatches"],
    summary="Feed back a result; not_our_responsibility re-routes to the parent department",
)
async def feedback_dispatch(
    dispatch_id: str, body: FeedbackIn, ctx: Ctx, principal: DeptUser
) -> dict[str, Any]:
    if body.result == "not_our_responsibility" and not (body.note or "").strip():
        raise invalid("reason-required", "not_our_responsibility needs a note giving the reason")
    calendar = calendar_of(ctx.settings)  # type: ignore[arg-type]
    async with ctx.db.transaction() as session:
        d = await dsp.load_for_department(session, dispatch_id, principal)
        d = await dsp.feedback(
            session,
            d,
            result=body.result,
            note=body.note,
            photos=body.photos,
            actor=principal.subject,
            calendar=calendar,
            now=utcnow(),
        )
        dept = await session.get(Department, d.department_id)
        return dsp.dispatch_view(d, dept)


@router.post("/dispatches/{dispatch_id}/close", tags=["dispatches"], summary="Close after feedback")
async def close_dispatch(dispatch_id: str, ctx: Ctx, principal: DeptUser) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        d = await dsp.load_for_department(session, dispatch_id, principal)
        d = await dsp.close(session, d, principal.subject, utcnow())
        dept = await session.get(Department, d.department_id)
        return dsp.dispatch_view(d, dept)


@router.get(
    "/cases",
    response_model=Page,
    tags=["cases"],
    summary="Cases (one per routed event), by grid or by source subject (e.g. hazard id)",
)
async def list_cases(
    ctx: Ctx,
    principal: Reader,
    grid_code: RegionCode | None = None,
    source_subject: str | None = None,
    source_event_id: str | None = None,
    cursor: str | None = None,
    limit: Limit = 50,
) -> Page:
    async with ctx.db.sessions() as session:
        q = select(Case).order_by(Case.id)
        if principal.has_role(*OVERSEER_ROLES):
            q = q.where(region_filter(Case.grid_code, principal.visible_prefixes()))
        if grid_code:
            q = q.where(Case.grid_code == grid_code)
        if source_subject:
            q = q.where(Case.source_subject == source_subject)
        if source_event_id:
            q = q.where(Case.source_event_id == source_event_id)
        if cursor:
            q = q.where(Case.id > cursor)
        cases = list((await session.scalars(q.limit(limit + 1))).all())
        page = cases[:limit]
        items = []
        for c in page:
            summary = await dsp.case_summary(session, c)
            if not principal.has_role(*OVERSEER_ROLES):
                if not any(
                    i["department_id"] == principal.department_id for i in summary["dispatches"]
                ):
                    continue
            items.append(summary)
    return Page(items=items, next_cursor=page[-1].id if len(cases) > limit else None)


@router.get(
    "/cases/{case_id}", tags=["cases"], summary="A case with who has acknowledged and who not"
)
async def get_case(case_id: str, ctx: Ctx, principal: Reader) -> dict[str, Any]:
    async with ctx.db.sessions() as session:
        case = await session.get(Case, case_id)
        if case is None:
            raise not_found("case", case_id)
        summary = await dsp.case_summary(session, case)
    if principal.has_role(*OVERSEER_ROLES):
        visible = principal.covers(case.grid_code)
    else:
        visible = any(i["department_id"] == principal.department_id for i in summary["dispatches"])
    if not visible:
        raise not_found("case", case_id)
    return summary


@router.get(
    "/unrouted-events",
    response_model=Page,
    tags=["routing"],
    summary="Events that matched no department",
)
async def list_unrouted(
    ctx: Ctx,
    principal: Annotated[Principal, Depends(require_roles("admin", "grid_admin", "viewer"))],
    cursor: Annotated[int | None, Query(ge=0, le=BIGINT_MAX)] = None,
    limit: Limit = 100,
) -> Page:
    async with ctx.db.sessions() as session:
        q = (
            select(UnroutedEvent)
            .where(region_filter(UnroutedEvent.grid_code, principal.visible_prefixes()))
            .order_by(UnroutedEvent.id)
        )
        if cursor:
            q = q.where(UnroutedEvent.id > cursor)
        rows = list((await session.scalars(q.limit(limit + 1))).all())
    page = rows[:limit]
    return Page(
        items=[
            {
                "id": r.id,
                "source_event_id": r.source_event_id,
                "source_event_type": r.source_event_type,
                "grid_code": r.grid_code,
                "reason": r.reason,
                "at": r.at.isoformat(),
                "event": r.event,
            }
            for r in page
        ],
        next_cursor=str(page[-1].id) if len(rows) > limit else None,
    )
