"""Employers (用工单位): responsibility agreement and roster; unregistered workers listed."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select

from gridgov_common.app import ServiceContext
from gridgov_common.auth import Principal
from gridgov_common.errors import conflict, invalid, not_found

from . import persons
from .access import china_today, ensure_visible, mask_name
from .models import Employer, Employment, Person, Registration, new_id
from .schemas import EmployerCreate, EmployerOut, EmploymentCreate, EmploymentOut


def agreement_status(signed: date | None, expires: date | None, today: date) -> str:
    if signed is None:
        return "missing"
    if expires is not None and expires < today:
        return "expired"
    return "signed"


def employer_out(employer: Employer) -> dict[str, Any]:
    return EmployerOut(
        id=employer.id,
        region_code=employer.region_code,
        name=employer.name,
        credit_code=employer.credit_code,
        address=employer.address,
        agreement_signed=employer.agreement_signed,
        agreement_expires=employer.agreement_expires,
        agreement_status=agreement_status(
            employer.agreement_signed, employer.agreement_expires, china_today()
        ),
    ).model_dump(mode="json")


async def create(ctx: ServiceContext, principal: Principal, body: EmployerCreate) -> dict[str, Any]:
    principal.ensure_covers(body.region_code)
    async with ctx.db.transaction() as session:
        if body.credit_code and await session.scalar(
            select(Employer.id).where(Employer.credit_code == body.credit_code)
        ):
            raise conflict("employer-exists", f"an employer with {body.credit_code} exists")
        employer = Employer(id=new_id(), **body.model_dump())
        session.add(employer)
        await session.flush()
        return employer_out(employer)


async def get_visible(session: Any, principal: Principal, employer_id: str) -> Employer:
    employer = await session.get(Employer, employer_id)
    if employer is None:
        raise not_found("employer", employer_id)
    ensure_visible(principal, employer.region_code, "employer", employer_id)
    return employer


async def hire(
    ctx: ServiceContext, principal: Principal, employer_id: str, body: EmploymentCreate
) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        employer = await get_visible(session, principal, employer_id)
        person = await session.get(Person, body.person_id)
        if person is None:
            raise not_found("person", body.person_id)
        open_job = await session.scalar(
            select(Employment.id).where(
                Employment.employer_id == employer.id,
                Employment.person_id == person.id,
                Employment.end_date.is_(None),
            )
        )
        if open_job and body.end_date is None:
            raise conflict("already-employed", "the person is already on this roster")
        if body.start_date > china_today():
            raise invalid("start-in-future", "start_date is in the future")
        job = Employment(id=new_id(), employer_id=employer.id, **body.model_dump())
        session.add(job)
        await session.flush()
        registered = await persons.active_registration(session, person.id) is not None
        return _job_out(job, person, registered)


def _job_out(job: Employment, person: Person, registered: bool) -> dict[str, Any]:
    return EmploymentOut(
        id=job.id,
        employer_id=job.employer_id,
        person_id=person.id,
        masked_name=mask_name(person.name),
        start_date=job.start_date,
        end_date=job.end_date,
        registered=registered,
    ).model_dump(mode="json")


async def roster(
    ctx: ServiceContext, principal: Principal, employer_id: str, unregistered_only: bool
) -> list[dict[str, Any]]:
    """Current employees; with ``unregistered_only`` those lacking an active registration."""
    today = china_today()
    async with ctx.db.sessions() as session:
        employer = await get_visible(session, principal, employer_id)
        active_reg = (
            select(Registration.person_id).where(Registration.active.is_(True)).scalar_subquery()
        )
        rows = (
            await session.execute(
                select(Employment, Person, Person.id.in_(active_reg))
                .join(Person, Person.id == Employment.person_id)
                .where(
                    Employment.employer_id == employer.id,
                    (Employment.end_date.is_(None)) | (Employment.end_date >= today),
                )
                .order_by(Employment.start_date, Employment.id)
            )
        ).all()
    items = [_job_out(job, person, bool(reg)) for job, person, reg in rows]
    if unregistered_only:
        items = [i for i in items if not i["registered"]]
    return items
