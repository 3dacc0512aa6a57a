"""Persons: validated identity, encrypted numbers, masked reads, audited unmasking, search."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gridgov_common.app import ServiceContext
from gridgov_common.auth import Principal
from gridgov_common.errors import Problem, invalid, not_found

from . import duplicates, special_groups
from .access import audit, check_unmask, china_today, ensure_visible, scope_filter
from .citizen_id import CitizenIdError, age_on, check_declared, parse_citizen_id
from .models import OutflowReport, Person, Registration, new_id
from .names import name_pinyin, normalise_name
from .pii import PiiError, mask_citizen_id, mask_phone
from .schemas import PersonCreate, PersonOut, PersonSearch, PersonUpdate
from .settings import Settings


@dataclass(frozen=True)
class Identity:
    document_type: str
    number: str  # normalised, whole
    birth_date: date
    sex: str
    nationality: str


def validate_identity(body: PersonCreate, today: date | None = None) -> Identity:
    """Check the document number and that the entered birth date and sex agree with it."""
    if body.id_number:
        try:
            cid = parse_citizen_id(body.id_number, today=today)
            check_declared(cid, body.birth_date, body.sex)
        except CitizenIdError as exc:
            raise invalid("invalid-citizen-id", f"id_number: {exc}") from None
        return Identity("citizen_id", cid.number, cid.birth_date, cid.sex, "CHN")
    number = "".join((body.passport_number or "").split()).upper()
    if not number.isalnum() or len(number) < 5:
        raise invalid("invalid-passport", "passport_number must be 5-20 letters and digits")
    assert body.birth_date is not None and body.sex is not None and body.nationality
    if body.birth_date > (today or china_today()):
        raise invalid("invalid-birth-date", "birth_date is in the future")
    return Identity("passport", number, body.birth_date, body.sex, body.nationality)


def normalise_document(value: str) -> str:
    """Citizen IDs are normalised by the blind index itself; passports: no spaces, upper."""
    return "".join(value.split()).upper()


def document_index(settings: Settings, document_type: str, number: str, nationality: str) -> str:
    if document_type == "citizen_id":
        return settings.blind_index.index("citizen_id", number)
    return settings.blind_index.index("passport", f"{nationality}:{number}")


def _aad(person_id: str, field: str) -> str:
    return f"person:{person_id}.{field}"


def set_phone(settings: Settings, person: Person, phone: str | None) -> None:
    if not phone:
        person.phone_enc = person.phone_bidx = person.phone_masked = None
        return
    try:
        person.phone_bidx = settings.blind_index.index("phone", phone)
    except PiiError:
        raise invalid("invalid-phone", "phone must contain digits") from None
    normalised = settings.blind_index.normalise("phone", phone)
    person.phone_enc = settings.cipher.encrypt(normalised, _aad(person.id, "phone"))
    person.phone_masked = mask_phone(normalised)


async def create(
    ctx: ServiceContext, session: AsyncSession, principal: Principal, body: PersonCreate
) -> tuple[Person, list[duplicates.Match]]:
    settings: Settings = ctx.settings  # type: ignore[assignment]
    principal.ensure_covers(body.region_code)
    ident = validate_identity(body)
    name = normalise_name(body.name)
    person = Person(
        id=new_id(),
        region_code=body.region_code,
        name=name,
        name_pinyin=name_pinyin(name),
        sex=ident.sex,
        birth_date=ident.birth_date,
        document_type=ident.document_type,
        nationality=ident.nationality,
        ethnicity=body.ethnicity,
        education=body.education,
        occupation=body.occupation,
        household_region_code=body.household_region_code,
        household_address=body.household_address,
        flags=sorted(set(body.flags)),
        status="active",
        facts_version=1,
    )
    person.id_bidx = document_index(settings, ident.document_type, ident.number, ident.nationality)
    person.id_enc = settings.cipher.encrypt(ident.number, _aad(person.id, "id_number"))
    person.id_masked = mask_citizen_id(ident.number)
    set_phone(settings, person, body.phone)
    session.add(person)
    await session.flush()
    await duplicates.index_name(session, person)
    await session.flush()
    matches = await duplicates.check_person(session, person)
    return person, matches


async def update(
    ctx: ServiceContext,
    session: AsyncSession,
    principal: Principal,
    person_id: str,
    body: PersonUpdate,
) -> tuple[Person, list[duplicates.Match]]:
    person = await get_visible(session, principal, person_id)
    settings: Settings = ctx.settings  # type: ignore[assignment]
    changes = body.model_dump(exclude_unset=True)
    facts_changed = False
    if changes.get("name"):
        name = normalise_name(changes["name"])
        if name != person.name:
            person.name = name
            facts_changed = True
            await duplicates.index_name(session, person)
    if "household_region_code" in changes and (
        changes["household_region_code"] != person.household_region_code
    ):
        person.household_region_code = changes["household_region_code"]
        facts_changed = True
    for field in ("ethnicity", "education", "occupation", "household_address"):
        if field in changes:
            setattr(person, field, changes[field])
    if "phone" in changes:
        set_phone(settings, person, changes["phone"])
    if changes.get("flags") is not None:
        person.flags = sorted(set(changes["flags"]))
        grid = await active_grid(session, person.id)
        await special_groups.publish_flags(ctx, session, person, grid)
    matches: list[duplicates.Match] = []
    if facts_changed:
        person.facts_version += 1
        await session.flush()
        matches = await duplicates.check_person(session, person)
    return person, matches


async def get_visible(session: AsyncSession, principal: Principal, person_id: str) -> Person:
    person = await session.get(Person, person_id)
    if person is None:
        raise not_found("person", person_id)
    ensure_visible(principal, person.region_code, "person", person_id)
    return person


async def active_registration(session: AsyncSession, person_id: str) -> Registration | None:
    result = await session.scalar(
        select(Registration).where(
            Registration.person_id == person_id, Registration.active.is_(True)
        )
    )
    return result


async def active_grid(session: AsyncSession, person_id: str) -> str | None:
    reg = await active_registration(session, person_id)
    return reg.grid_code if reg else None


def to_out(
    settings: Settings,
    person: Person,
    *,
    unmasked: bool = False,
    registration: Registration | None = None,
) -> dict[str, Any]:
    today = china_today()
    if unmasked:
        number = settings.cipher.decrypt(person.id_enc, _aad(person.id, "id_number"))
        phone = (
            settings.cipher.decrypt(person.phone_enc, _aad(person.id, "phone"))
            if person.phone_enc
            else None
        )
    else:
        number, phone = person.id_masked, person.phone_masked
    return PersonOut(
        id=person.id,
        region_code=person.region_code,
        name=person.name,
        name_pinyin=person.name_pinyin,
        sex=person.sex,
        birth_date=person.birth_date,
        age=age_on(person.birth_date, today),
        document_type=person.document_type,
        nationality=person.nationality,
        id_number=number,
        phone=phone,
        masked=not unmasked,
        ethnicity=person.ethnicity,
        education=person.education,
        occupation=person.occupation,
        household_region_code=person.household_region_code,
        household_address=person.household_address,
        flags=list(person.flags or []),
        special_groups=special_groups.special_groups(person.flags or [], person.birth_date, today),
        status=person.status,
        merged_into=person.merged_into,
        classification=registration.classification if registration else None,
        active_registration_id=registration.id if registration else None,
    ).model_dump(mode="json")


async def read(
    ctx: ServiceContext,
    principal: Principal,
    person_id: str,
    *,
    unmask: bool,
    purpose: str | None,
) -> dict[str, Any]:
    settings: Settings = ctx.settings  # type: ignore[assignment]
    show = check_unmask(principal, unmask, purpose, settings.unmask_roles)
    async with ctx.db.transaction() as session:
        person = await get_visible(session, principal, person_id)
        reg = await active_registration(session, person.id)
        outflow = None
        if reg is None:
            outflow = await session.scalar(
                select(OutflowReport.id).where(
                    OutflowReport.person_id == person.id, OutflowReport.returned_on.is_(None)
                )
            )
        if show:
            fields = ["id_number"] + (["phone"] if person.phone_enc else [])
            audit(session, principal, "unmask", "person", person.id, fields=fields, purpose=purpose)
        result = to_out(settings, person, unmasked=show, registration=reg)
        if outflow is not None:
            result["classification"] = "outflow"
        return result


async def search(
    ctx: ServiceContext, principal: Principal, query: PersonSearch
) -> list[dict[str, Any]]:
    """Against fishing: two attributes at least, or the whole ID number; bounded results."""
    settings: Settings = ctx.settings  # type: ignore[assignment]
    given = [
        f
        for f in ("name", "birth_date", "phone", "household_region_code")
        if getattr(query, f) not in (None, "")
    ]
    stmt = select(Person).where(Person.status == "active")
    if query.id_number:
        try:
            cid = parse_citizen_id(query.id_number)
            bidx = settings.blind_index.index("citizen_id", cid.number)
        except (CitizenIdError, PiiError) as exc:
            raise invalid("invalid-citizen-id", f"id_number: {exc}") from None
        stmt = stmt.where(Person.id_bidx == bidx)
    elif len(given) < 2:
        raise Problem(
            422,
            "search-too-broad",
            "a person search needs at least two of name, birth_date, phone, "
            "household_region_code — or the whole id_number",
        )
    if query.name:
        stmt = stmt.where(Person.name == normalise_name(query.name))
    if query.birth_date:
        stmt = stmt.where(Person.birth_date == query.birth_date)
    if query.household_region_code:
        stmt = stmt.where(Person.household_region_code == query.household_region_code)
    if query.phone:
        try:
            stmt = stmt.where(Person.phone_bidx == settings.blind_index.index("phone", query.phone))
        except PiiError:
            raise invalid("invalid-phone", "phone must contain digits") from None
    scope = scope_filter(principal, Person.region_code, query.region_code)
    if scope is not None:
        stmt = stmt.where(scope)
    limit = min(query.limit, settings.search_max_results)
    async with ctx.db.sessions() as session:
        rows = (await session.scalars(stmt.order_by(Person.id).limit(limit))).all()
    return [to_out(settings, p) for p in rows]
