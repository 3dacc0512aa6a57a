"""Residence permits (居住证): eligibility, issue, annual endorsement, suspension, reminders.

Rules (State Council Interim Regulations on Residence Permits, 2015):
* eligible after six months' continuous residence registration plus stable employment,
  housing or study (the evidence is recorded on the permit);
* valid one year from issue; endorsed (签注) each year within the month before the
  anniversary; an overdue permit is suspended and a late endorsement restores it;
* reminders are published as ``permit.expiring`` ahead of each due date.
"""

from __future__ import annotations

import asyncio
import calendar
import logging
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gridgov_common.app import ServiceContext
from gridgov_common.auth import Principal
from gridgov_common.errors import Problem, conflict, invalid, not_found
from gridgov_common.events.population import PermitExpiring
from gridgov_common.lease import Lease

from . import persons, registrations
from .access import audit, check_unmask, china_today, ensure_visible, next_number
from .models import House, Permit, new_id
from .schemas import PermitApply, PermitOut
from .settings import Settings

log = logging.getLogger("gridgov.population.permits")

REQUIRED_MONTHS = 6
WINDOW_MONTHS = 1


def add_months(day: date, months: int) -> date:
    """Same day ``months`` later (clamped to the month's end: 31 Jan + 1 = 28/29 Feb)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def eligible_since(periods: list[tuple[date, date | None]], as_of: date) -> date | None:
    """Start of the continuous registration on ``as_of`` (periods after it are ignored)."""
    clipped = [(a, min(d, as_of) if d else None) for a, d in periods if a <= as_of]
    return registrations.continuous_since(clipped, as_of)


def check_eligibility(
    periods: list[tuple[date, date | None]], evidence: list[Any], as_of: date
) -> date:
    """Raise unless six months' continuous registration and some evidence; returns the start."""
    since = eligible_since(periods, as_of)
    if since is None:
        raise invalid("not-registered", "the person has no current residence registration")
    needed = add_months(since, REQUIRED_MONTHS)
    if needed > as_of:
        months = (as_of.year - since.year) * 12 + as_of.month - since.month
        raise invalid(
            "residence-too-short",
            f"continuous registration since {since} ({months} month(s)); a permit needs "
            f"{REQUIRED_MONTHS} months — eligible from {needed}",
            eligible_from=needed.isoformat(),
        )
    if not evidence:
        raise invalid("evidence-required", "record evidence of stable employment, housing or study")
    return since


def window_opens(due: date) -> date:
    return add_months(due, -WINDOW_MONTHS)


def status_on(valid_until: date, today: date) -> str:
    return "valid" if today < valid_until else "suspended"


def endorse_dates(issue_date: date, valid_until: date, on: date) -> date:
    """The new due date after an endorsement on ``on``; raises outside the window.

    In time: within the month before the due date -> due date + 1 year.
    Late (overdue, suspended): restores; the next due date is the first anniversary of the
    issue date after ``on``.
    """
    opens = window_opens(valid_until)
    if on < opens:
        raise invalid(
            "endorsement-outside-window",
            f"endorsement is accepted from {opens} (one month before the due date "
            f"{valid_until}); come back then",
            window_opens=opens.isoformat(),
            due=valid_until.isoformat(),
        )
    years = valid_until.year - issue_date.year
    if on < valid_until:
        return add_months(issue_date, 12 * (years + 1))
    while add_months(issue_date, 12 * years) <= on:
        years += 1
    return add_months(issue_date, 12 * years)


def out(settings: Settings, permit: Permit, unmasked: bool = False) -> dict[str, Any]:
    number = (
        settings.cipher.decrypt(permit.id_enc, f"permit:{permit.id}.id_number")
        if unmasked
        else permit.id_masked
    )
    return PermitOut(
        id=permit.id,
        permit_number=permit.permit_number,
        person_id=permit.person_id,
        grid_code=permit.grid_code,
        name=permit.name,
        sex=permit.sex,
        ethnicity=permit.ethnicity,
        birth_date=permit.birth_date,
        id_number=number,
        photo_ref=permit.photo_ref,
        household_address=permit.household_address,
        residence_address=permit.residence_address,
        issuing_authority=permit.issuing_authority,
        issue_date=permit.issue_date,
        valid_until=permit.valid_until,
        endorsement_window_opens=window_opens(permit.valid_until),
        status=permit.status,
        evidence=permit.evidence,
        endorsements=permit.endorsements,
    ).model_dump(mode="json")


async def apply(ctx: ServiceContext, principal: Principal, body: PermitApply) -> dict[str, Any]:
    settings: Settings = ctx.settings  # type: ignore[assignment]
    today = china_today()
    issue_date = body.issue_date or today
    if issue_date > today:
        raise invalid("issue-date-in-future", "issue_date cannot be in the future")
    async with ctx.db.transaction() as session:
        person = await persons.get_visible(session, principal, body.person_id)
        if person.status != "active":
            raise conflict("person-merged", f"person was merged into {person.merged_into}")
        existing = await session.scalar(
            select(Permit).where(
                Permit.person_id == person.id, Permit.status.in_(("valid", "suspended"))
            )
        )
        if existing is not None:
            raise conflict(
                "permit-exists",
                f"the person already holds permit {existing.permit_number} ({existing.status}); "
                "endorse it instead",
                permit_id=existing.id,
            )
        history = await registrations.history(session, person.id)
        periods = [(r.arrival_date, r.departure_date) for r in history]
        check_eligibility(periods, body.evidence, issue_date)
        current = await persons.active_registration(session, person.id)
        if current is None:
            raise invalid("not-registered", "the person has no current residence registration")
        principal.ensure_covers(current.grid_code)
        house = await session.get(House, current.house_id)
        assert house is not None
        serial = await next_number(session, f"permit:{current.grid_code[:6]}")
        permit_id = new_id()
        number = settings.cipher.decrypt(person.id_enc, f"person:{person.id}.id_number")
        permit = Permit(
            id=permit_id,
            permit_number=f"{current.grid_code[:6]}{issue_date.year}{serial:07d}",
            person_id=person.id,
            grid_code=current.grid_code,
            name=person.name,
            sex=person.sex,
            ethnicity=person.ethnicity,
            birth_date=person.birth_date,
            id_enc=settings.cipher.encrypt(number, f"permit:{permit_id}.id_number"),
            id_masked=person.id_masked,
            photo_ref=body.photo_ref,
            household_address=person.household_address,
            residence_address=house.address,
            issuing_authority=body.issuing_authority,
            issue_date=issue_date,
            valid_until=add_months(issue_date, 12),
            evidence=[e.model_dump() for e in body.evidence],
            endorsements=[],
        )
        permit.status = status_on(permit.valid_until, today)
        session.add(permit)
        await session.flush()
        return out(settings, permit)


async def get_visible(session: AsyncSession, principal: Principal, permit_id: str) -> Permit:
    permit = await session.get(Permit, permit_id)
    if permit is None:
        raise not_found("permit", permit_id)
    ensure_visible(principal, permit.grid_code, "permit", permit_id)
    return permit


async def read(
    ctx: ServiceContext, principal: Principal, permit_id: str, unmask: bool, purpose: str | None
) -> dict[str, Any]:
    settings: Settings = ctx.settings  # type: ignore[assignment]
    show = check_unmask(principal, unmask, purpose, settings.unmask_roles)
    async with ctx.db.transaction() as session:
        permit = await get_visible(session, principal, permit_id)
        if show:
            audit(
                session,
                principal,
                "unmask",
                "permit",
                permit.id,
                fields=["id_number"],
                purpose=purpose,
            )
        return out(settings, permit, unmasked=show)


async def endorse(
    ctx: ServiceContext, principal: Principal, permit_id: str, on: date | None
) -> dict[str, Any]:
    settings: Settings = ctx.settings  # type: ignore[assignment]
    today = china_today()
    on = on or today
    if on > today:
        raise invalid("endorsement-in-future", "an endorsement cannot be dated in the future")
    async with ctx.db.transaction() as session:
        permit = await get_visible(session, principal, permit_id)
        current = await persons.active_registration(session, permit.person_id)
        if current is None:
            raise Problem(
                422,
                "not-registered",
                "endorsement needs a current residence registration in the city",
            )
        permit.valid_until = endorse_dates(permit.issue_date, permit.valid_until, on)
        permit.endorsements = [*permit.endorsements, on.isoformat()]
        permit.status = status_on(permit.valid_until, today)
        permit.grid_code = current.grid_code
        return out(settings, permit)


async def scan(ctx: ServiceContext, today: date | None = None) -> dict[str, int]:
    """Suspend overdue permits and publish reminders; each fact once (``reminded_for``)."""
    settings: Settings = ctx.settings  # type: ignore[assignment]
    today = today or china_today()
    horizon = today + timedelta(days=settings.permit_reminder_days)
    counts = {"suspended": 0, "reminded": 0}
    async with ctx.db.transaction() as session:
        due = (
            await session.scalars(
                select(Permit)
                .where(Permit.status == "valid", Permit.valid_until <= horizon)
                .order_by(Permit.valid_until)
                .limit(1000)
            )
        ).all()
        for permit in due:
            if today >= permit.valid_until:
                permit.status = "suspended"
                counts["suspended"] += 1
            elif permit.reminded_for == permit.valid_until:
                continue
            else:
                counts["reminded"] += 1
            permit.reminded_for = permit.valid_until
            await ctx.publish(
                session,
                PermitExpiring(
                    permit_id=permit.id,
                    person_id=permit.person_id,
                    grid_code=permit.grid_code,
                    permit_number=permit.permit_number,
                    endorsement_due=permit.valid_until,
                    status=permit.status,  # type: ignore[arg-type]
                ),
                subject=permit.id,
                gridcode=permit.grid_code,
            )
    return counts


async def scan_if_holder(
    ctx: ServiceContext, lease: Lease, today: date | None = None
) -> dict[str, int] | None:
    """One round on one replica: only the lease holder scans."""
    if not await lease.acquire():
        return None
    return await scan(ctx, today)


async def reminder_worker(ctx: ServiceContext) -> None:
    """Background job (safe on several replicas: lease-protected)."""
    settings: Settings = ctx.settings  # type: ignore[assignment]
    lease = Lease(
        ctx.db,
        ctx.tables,
        "permit-reminders",
        ttl=timedelta(seconds=max(30.0, settings.permit_scan_seconds * 2)),
    )
    while True:
        try:
            await scan_if_holder(ctx, lease)
        except Exception as exc:
            log.warning("permit scan failed: %s", exc)
        await asyncio.sleep(settings.permit_scan_seconds)
