"""Duplicate person records: find candidates on every registration, review, merge.

Candidates come from three blocking queries (same ID blind index; same household place + name
+ birth date; same pinyin key + birth date) and carry the reasons from
:func:`names.match_reasons`. A reviewer's "not duplicate" holds until either record's facts
change (``facts_version``); "duplicate" merges the other record into the survivor.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gridgov_common.auth import Principal
from gridgov_common.db import utcnow
from gridgov_common.errors import Problem, conflict, not_found

from .access import audit, ensure_visible, mask_name
from .models import (
    DuplicateCandidate,
    Employment,
    Permit,
    Person,
    PersonNameKey,
    PointsApplication,
    Registration,
)
from .names import PersonFacts, match_reasons, name_pinyin, pinyin_match_keys

# A common name shares a birth date with many people: bound the work per registration.
MAX_CANDIDATES = 50


@dataclass
class Match:
    candidate: DuplicateCandidate
    other: Person
    reasons: list[str]


def facts_of(person: Person) -> PersonFacts:
    return PersonFacts(
        id_index=person.id_bidx,
        name=person.name,
        birth_date=person.birth_date,
        household_region_code=person.household_region_code,
    )


def reasons_for(a: Person, b: Person) -> list[str]:
    reasons = match_reasons(facts_of(a), facts_of(b))
    if (
        "same_name_pinyin_birth_date" not in reasons
        and a.birth_date == b.birth_date
        and pinyin_match_keys(a.name) & pinyin_match_keys(b.name)
    ):
        # One heteronymous character read differently by the clerk's input method.
        reasons.append("similar_name_pinyin_birth_date")
    return reasons


async def index_name(session: AsyncSession, person: Person) -> None:
    """(Re)write the pinyin blocking keys of ``person``."""
    existing = (
        await session.scalars(select(PersonNameKey).where(PersonNameKey.person_id == person.id))
    ).all()
    for row in existing:
        await session.delete(row)
    await session.flush()
    person.name_pinyin = name_pinyin(person.name)
    for key in pinyin_match_keys(person.name) or {person.name_pinyin}:
        session.add(PersonNameKey(person_id=person.id, key=key, birth_date=person.birth_date))


async def find_candidates(session: AsyncSession, person: Person) -> list[Person]:
    keys = pinyin_match_keys(person.name) or {name_pinyin(person.name)}
    by_key = select(PersonNameKey.person_id).where(
        PersonNameKey.key.in_(keys), PersonNameKey.birth_date == person.birth_date
    )
    clauses = [Person.id_bidx == person.id_bidx, Person.id.in_(by_key)]
    if person.household_region_code:
        clauses.append(
            (Person.household_region_code == person.household_region_code)
            & (Person.birth_date == person.birth_date)
            & (Person.name == person.name)
        )
    rows = await session.scalars(
        select(Person)
        .where(or_(*clauses), Person.id != person.id, Person.status == "active")
        .limit(MAX_CANDIDATES)
    )
    return list(rows.all())


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def _versions(a: Person, b: Person) -> str:
    first, second = (a, b) if a.id < b.id else (b, a)
    return f"{first.facts_version}:{second.facts_version}"


async def check_person(session: AsyncSession, person: Person) -> list[Match]:
    """Find and record duplicate candidates for ``person`` (call after flush)."""
    matches: list[Match] = []
    for other in await find_candidates(session, person):
        reasons = reasons_for(person, other)
        if not reasons:
            continue
        a, b = _pair(person.id, other.id)
        cand = await session.scalar(
            select(DuplicateCandidate).where(
                DuplicateCandidate.person_a == a, DuplicateCandidate.person_b == b
            )
        )
        if cand is None:
            cand = DuplicateCandidate(
                person_a=a, person_b=b, region_code=person.region_code, reasons=reasons
            )
            session.add(cand)
        elif cand.status == "not_duplicate":
            if cand.decided_versions == _versions(person, other):
                continue  # reviewed, and nothing changed since
            cand.status = "open"
            cand.reasons = reasons
        elif cand.status == "duplicate":
            continue
        else:
            cand.reasons = reasons
        await session.flush()
        matches.append(Match(cand, other, reasons))
    return matches


async def decide(
    session: AsyncSession,
    principal: Principal,
    candidate_id: str,
    decision: str,
    survivor_id: str | None,
    purpose: str,
) -> DuplicateCandidate:
    cand = await session.get(DuplicateCandidate, candidate_id)
    if cand is None:
        raise not_found("duplicate candidate", candidate_id)
    a = await session.get(Person, cand.person_a)
    b = await session.get(Person, cand.person_b)
    if a is None or b is None:
        raise not_found("duplicate candidate", candidate_id)
    ensure_visible(principal, a.region_code, "duplicate candidate", candidate_id)
    ensure_visible(principal, b.region_code, "duplicate candidate", candidate_id)
    if cand.status != "open":
        raise conflict("already-decided", f"this candidate was already decided: {cand.status}")
    cand.status = decision
    cand.decided_by = principal.subject
    cand.decided_at = utcnow()
    cand.decided_versions = _versions(a, b)
    if decision == "not_duplicate":
        audit(
            session,
            principal,
            "not_duplicate",
            "duplicate",
            cand.id,
            purpose=purpose,
            detail={"persons": [a.id, b.id]},
        )
        return cand
    if survivor_id not in (a.id, b.id):
        raise Problem(
            422,
            "survivor-required",
            "a 'duplicate' decision needs survivor_id: one of the two persons",
        )
    survivor, loser = (a, b) if survivor_id == a.id else (b, a)
    moved = await merge(session, survivor, loser)
    cand.survivor_id = survivor.id
    audit(
        session,
        principal,
        "merge",
        "person",
        survivor.id,
        purpose=purpose,
        detail={"merged": loser.id, "moved": moved, "candidate": cand.id},
    )
    return cand


async def merge(session: AsyncSession, survivor: Person, loser: Person) -> dict[str, int]:
    """Move registrations, permits, employments and points applications to the survivor."""
    active = select(Registration.id).where(Registration.active.is_(True))
    surv_active = await session.scalar(active.where(Registration.person_id == survivor.id))
    loser_active = await session.scalar(active.where(Registration.person_id == loser.id))
    if surv_active and loser_active:
        raise conflict(
            "both-registered",
            "both records have an active residence registration; record the departure from "
            "the wrong one first, then merge",
        )
    moved: dict[str, int] = {}
    for model in (Registration, Permit, Employment):
        res = await session.execute(
            update(model).where(model.person_id == loser.id).values(person_id=survivor.id)
        )
        moved[model.__tablename__] = int(res.rowcount or 0)  # type: ignore[attr-defined]
    # Points: one application per person, year and purpose; keep the survivor's on a clash.
    apps = (
        await session.scalars(
            select(PointsApplication).where(PointsApplication.person_id == loser.id)
        )
    ).all()
    kept = {
        (p.year, p.purpose)
        for p in (
            await session.scalars(
                select(PointsApplication).where(PointsApplication.person_id == survivor.id)
            )
        ).all()
    }
    n = 0
    for app in apps:
        if (app.year, app.purpose) not in kept:
            app.person_id = survivor.id
            n += 1
    moved["points_applications"] = n
    if loser_active:
        survivor.region_code = loser.region_code
    loser.status = "merged"
    loser.merged_into = survivor.id
    flags = set(survivor.flags or []) | set(loser.flags or [])
    survivor.flags = sorted(flags)
    await session.flush()
    return moved


def match_summary(match: Match) -> dict[str, object]:
    return {
        "candidate_id": match.candidate.id,
        "person_id": match.other.id,
        "masked_name": mask_name(match.other.name),
        "reasons": match.reasons,
    }
