"""Residence registrations (居住登记): dated periods, one active per person, handover on move.

Registered on arrival, deregistered on leaving. A new arrival elsewhere closes the previous
period on the new arrival date, so the residence history (and the continuity a permit needs)
is always derivable from the rows, which are never deleted.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gridgov_common.app import ServiceContext
from gridgov_common.auth import Principal
from gridgov_common.errors import Problem, conflict, invalid, not_found
from gridgov_common.events.population import ResidenceEnded, ResidenceRegistered

from . import duplicates, houses, persons, special_groups
from .access import china_today, ensure_visible
from .models import House, OutflowReport, Person, Registration, Room, new_id
from .schemas import OutflowCreate, RegistrationCreate, RegistrationOut
from .settings import Settings


def classify(household_region_code: str | None, grid_code: str) -> str:
    """inflow (人在户不在) unless the household place is the district of residence (local)."""
    if household_region_code and grid_code.startswith(household_region_code):
        return "local"
    return "inflow"


def check_departure(arrival: date, departure: date, today: date) -> None:
    if departure < arrival:
        raise invalid(
            "departure-before-arrival",
            f"departure_date {departure} is before the arrival_date {arrival}",
        )
    if departure > today + timedelta(days=1):
        raise invalid("departure-in-future", f"departure_date {departure} is in the future")


def continuous_since(periods: Iterable[tuple[date, date | None]], today: date) -> date | None:
    """Start of the unbroken run of registration ending today (None if not registered now).

    Periods that touch or overlap (a move closes one period on the day the next starts, or
    the day before) are one continuous residence.
    """
    spans = sorted((a, d or today) for a, d in periods)
    if not spans:
        return None
    runs: list[list[date]] = []
    for start, end in spans:
        if runs and start <= runs[-1][1] + timedelta(days=1):
            runs[-1][1] = max(runs[-1][1], end)
        else:
            runs.append([start, end])
    last_start, last_end = runs[-1]
    return last_start if last_end >= today else None


def out(reg: Registration, closed: str | None = None) -> dict[str, Any]:
    return RegistrationOut(
        id=reg.id,
        person_id=reg.person_id,
        house_id=reg.house_id,
        room_id=reg.room_id,
        grid_code=reg.grid_code,
        arrival_date=reg.arrival_date,
        departure_date=reg.departure_date,
        reason=reg.reason,
        classification=reg.classification,
        active=reg.active,
        closed_registration_id=closed,
    ).model_dump(mode="json")


async def register(
    ctx: ServiceContext, principal: Principal, body: RegistrationCreate
) -> dict[str, Any]:
    today = china_today()
    if body.arrival_date > today + timedelta(days=1):
        raise invalid("arrival-in-future", f"arrival_date {body.arrival_date} is in the future")
    try:
        async with ctx.db.transaction() as session:
            return await _register(ctx, session, principal, body)
    except IntegrityError:
        # Two arrivals for one person racing: the unique index on active rows decides.
        raise conflict(
            "already-registered",
            "the person got another active registration concurrently; reload and retry",
        ) from None


async def _register(
    ctx: ServiceContext, session: AsyncSession, principal: Principal, body: RegistrationCreate
) -> dict[str, Any]:
    person = await _person_for_arrival(ctx, session, principal, body)
    if person.status != "active":
        raise conflict("person-merged", f"person was merged into {person.merged_into}")
    house = await houses.get_visible(session, principal, body.house_id)
    principal.ensure_covers(house.grid_code)
    if house.status != "active":
        raise conflict("house-inactive", "the house is not active")
    room_id = None
    if body.room_number is not None:
        room = await session.scalar(
            select(Room).where(Room.house_id == house.id, Room.number == body.room_number)
        )
        if room is None:
            raise invalid(
                "unknown-room", f"house {house.house_code} has no room {body.room_number}"
            )
        room_id = room.id
    previous = await persons.active_registration(session, person.id)
    await houses.lock(session, [house.id] + ([previous.house_id] if previous else []))
    closed_id = None
    old_house: House | None = None
    if previous is not None:
        if previous.house_id == house.id:
            raise conflict(
                "already-registered",
                f"the person already has an active registration in this house since "
                f"{previous.arrival_date}; record a departure first",
                registration_id=previous.id,
            )
        if body.arrival_date < previous.arrival_date:
            raise conflict(
                "arrival-before-current",
                f"the person's current registration began {previous.arrival_date}; a new "
                f"arrival cannot be earlier",
                registration_id=previous.id,
            )
        # "A new arrival elsewhere closes the old one" and hands over to the new grid.
        previous.departure_date = body.arrival_date
        previous.active = False
        closed_id = previous.id
        await session.flush()
        await ctx.publish(
            session,
            ResidenceEnded(
                registration_id=previous.id,
                person_id=person.id,
                house_id=previous.house_id,
                grid_code=previous.grid_code,
                departure_date=body.arrival_date,
                moved_to_grid_code=house.grid_code,
            ),
            subject=previous.id,
            gridcode=previous.grid_code,
        )
        old_house = await session.get(House, previous.house_id)
    reg = Registration(
        id=new_id(),
        person_id=person.id,
        house_id=house.id,
        room_id=room_id,
        grid_code=house.grid_code,
        arrival_date=body.arrival_date,
        reason=body.reason,
        classification=classify(person.household_region_code, house.grid_code),
        active=True,
    )
    session.add(reg)
    person.region_code = house.grid_code
    await session.flush()
    await ctx.publish(
        session,
        ResidenceRegistered(
            registration_id=reg.id,
            person_id=person.id,
            house_id=house.id,
            grid_code=house.grid_code,
            arrival_date=reg.arrival_date,
            reason=reg.reason,
            classification=reg.classification,  # type: ignore[arg-type]
        ),
        subject=reg.id,
        gridcode=house.grid_code,
    )
    if old_house is not None:
        await houses.reassess(ctx, session, old_house)
    await houses.reassess(ctx, session, house)
    await special_groups.publish_flags(ctx, session, person, house.grid_code)
    matches = await duplicates.check_person(session, person)
    result = out(reg, closed_id)
    result["duplicate_candidates"] = [duplicates.match_summary(m) for m in matches]
    return result


async def _person_for_arrival(
    ctx: ServiceContext, session: AsyncSession, principal: Principal, body: RegistrationCreate
) -> Person:
    """The arriving person. A person recorded elsewhere (outside the caller's scopes) is
    handed over only to a registrar who presents the person's whole document number."""
    person = await session.get(Person, body.person_id)
    if person is None:
        raise not_found("person", body.person_id)
    if principal.covers(person.region_code):
        return person
    if body.id_number:
        settings: Settings = ctx.settings  # type: ignore[assignment]
        index = persons.document_index(
            settings,
            person.document_type,
            persons.normalise_document(body.id_number),
            person.nationality,
        )
        if hmac.compare_digest(index, person.id_bidx):
            return person
    raise not_found("person", body.person_id)


async def depart(
    ctx: ServiceContext, principal: Principal, registration_id: str, departure: date
) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        reg = await session.get(Registration, registration_id)
        if reg is None:
            raise not_found("registration", registration_id)
        ensure_visible(principal, reg.grid_code, "registration", registration_id)
        if not reg.active:
            raise conflict("already-departed", f"departure already recorded: {reg.departure_date}")
        check_departure(reg.arrival_date, departure, china_today())
        reg.departure_date = departure
        reg.active = False
        await session.flush()
        await ctx.publish(
            session,
            ResidenceEnded(
                registration_id=reg.id,
                person_id=reg.person_id,
                house_id=reg.house_id,
                grid_code=reg.grid_code,
                departure_date=departure,
            ),
            subject=reg.id,
            gridcode=reg.grid_code,
        )
        house = await session.get(House, reg.house_id)
        assert house is not None
        await houses.reassess(ctx, session, house)
        return out(reg)


async def history(session: AsyncSession, person_id: str) -> list[Registration]:
    return list(
        (
            await session.scalars(
                select(Registration)
                .where(Registration.person_id == person_id)
                .order_by(Registration.arrival_date, Registration.created_at)
            )
        ).all()
    )


async def report_outflow(
    ctx: ServiceContext, principal: Principal, body: OutflowCreate
) -> OutflowReport:
    principal.ensure_covers(body.community_code)
    async with ctx.db.transaction() as session:
        person = await session.get(Person, body.person_id)
        if person is None:
            raise not_found("person", body.person_id)
        if not (
            person.household_region_code
            and body.community_code.startswith(person.household_region_code)
        ):
            raise Problem(
                422,
                "not-household-here",
                "an outflow report is for a person whose household place is this community's "
                "district (户在人不在)",
            )
        report = OutflowReport(
            id=new_id(),
            person_id=person.id,
            community_code=body.community_code,
            destination=body.destination,
            left_on=body.left_on,
            reported_by=principal.subject,
        )
        session.add(report)
        return report
