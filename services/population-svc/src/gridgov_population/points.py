"""Points system (积分制): versioned scoring tables as data, line-by-line scores, rankings.

A scoring table is published once under a version and never edited; an application is scored
against a named version and keeps each line and the version, so recomputing gives the same
result. Rankings within a year, town and purpose follow the table's published tie-break.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from gridgov_common.app import ServiceContext
from gridgov_common.auth import Principal
from gridgov_common.errors import conflict, invalid, not_found

from . import persons, registrations
from .access import china_today, ensure_visible, mask_name
from .models import Person, PointsApplication, Quota, ScoringTable, new_id
from .schemas import PointsApply, PointsOut, QuotaIn, RankingEntry, RankingOut, ScoringTableIn

TIE_BREAKS = {"score_desc", "residence_years_desc", "submitted_at_asc", "id_asc"}
RESIDENCE_ITEM = "residence_years"


def _round(value: float) -> float:
    return float(Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def score(items: Sequence[dict[str, Any]], facts: dict[str, Any]) -> tuple[list[dict], float]:
    """Score ``facts`` line by line. Unknown fact keys are an error; missing ones score 0."""
    known = {item["code"] for item in items}
    unknown = sorted(set(facts) - known)
    if unknown:
        raise invalid("unknown-scoring-item", f"facts name items not in the table: {unknown}")
    lines = []
    total = Decimal("0")
    for item in items:
        code = item["code"]
        value = facts.get(code)
        if value is None:
            points = 0.0
        elif item["kind"] == "choice":
            choices = item.get("choices") or {}
            if str(value) not in choices:
                raise invalid(
                    "invalid-fact",
                    f"{code}: {value!r} is not one of {sorted(choices)}",
                )
            points = float(choices[str(value)])
        else:
            try:
                units = float(value)
            except (TypeError, ValueError):
                raise invalid("invalid-fact", f"{code}: expected a number") from None
            if units < 0:
                raise invalid("invalid-fact", f"{code}: must not be negative")
            points = units * float(item["points_per_unit"])
        raw = points
        cap = item.get("cap")
        if cap is not None:
            points = max(-abs(cap), min(abs(cap), points))
        points = _round(points)
        total += Decimal(str(points))
        lines.append(
            {
                "code": code,
                "category": item["category"],
                "label": item["label"],
                "value": value,
                "points": points,
                "capped": cap is not None and _round(raw) != points,
            }
        )
    return lines, float(total)


def rank(apps: Sequence[PointsApplication], tie_break: Sequence[str]) -> list[PointsApplication]:
    """Sort by the published rule (applied in order; 'id_asc' makes it total)."""

    def residence_points(app: PointsApplication) -> float:
        return next((ln["points"] for ln in app.lines if ln["code"] == RESIDENCE_ITEM), 0.0)

    def key(app: PointsApplication) -> tuple[Any, ...]:
        parts: list[Any] = []
        for rule in [*tie_break, "id_asc"]:
            if rule == "score_desc":
                parts.append(-app.score)
            elif rule == "residence_years_desc":
                parts.append(-residence_points(app))
            elif rule == "submitted_at_asc":
                parts.append(app.submitted_at.timestamp())
            elif rule == "id_asc":
                parts.append(app.id)
        return tuple(parts)

    return sorted(apps, key=key)


def residence_years(periods: list[tuple[date, date | None]], today: date) -> int:
    """Whole years of registered residence (sum of periods, overlaps counted once)."""
    total = 0
    spans = sorted((a, d or today) for a, d in periods)
    last_end: date | None = None
    for start, end in spans:
        if last_end is not None and start < last_end:
            start = last_end
        if end > start:
            total += (end - start).days
        last_end = max(last_end or end, end)
    return total // 365


async def publish_table(ctx: ServiceContext, body: ScoringTableIn) -> dict[str, Any]:
    bad = [r for r in body.tie_break if r not in TIE_BREAKS]
    if bad:
        raise invalid("invalid-tie-break", f"unknown tie-break rules {bad}; use {TIE_BREAKS}")
    codes = [i.code for i in body.items]
    if len(set(codes)) != len(codes):
        raise invalid("duplicate-item", "item codes must be unique")
    try:
        async with ctx.db.transaction() as session:
            table = ScoringTable(
                version=body.version,
                items=[i.model_dump(exclude_none=True) for i in body.items],
                tie_break=body.tie_break,
            )
            session.add(table)
            await session.flush()
            return _table_out(table)
    except IntegrityError:
        raise conflict(
            "table-version-exists",
            f"scoring table {body.version} is published and immutable; publish a new version",
        ) from None


def _table_out(table: ScoringTable) -> dict[str, Any]:
    return {
        "version": table.version,
        "items": table.items,
        "tie_break": table.tie_break,
        "published_at": table.published_at.isoformat(),
    }


async def get_table(ctx: ServiceContext, version: str) -> dict[str, Any]:
    async with ctx.db.sessions() as session:
        table = await session.get(ScoringTable, version)
    if table is None:
        raise not_found("scoring table", version)
    return _table_out(table)


async def set_quota(ctx: ServiceContext, principal: Principal, body: QuotaIn) -> dict[str, Any]:
    principal.ensure_covers(body.town_code)
    async with ctx.db.transaction() as session:
        quota = await session.get(Quota, (body.year, body.town_code, body.purpose))
        if quota is None:
            quota = Quota(year=body.year, town_code=body.town_code, purpose=body.purpose)
            session.add(quota)
        quota.quota = body.quota
    return body.model_dump()


def _app_out(app: PointsApplication) -> dict[str, Any]:
    return PointsOut.model_validate(app, from_attributes=True).model_dump(mode="json")


async def _facts_with_residence(
    session: Any, person_id: str, table_items: list[dict[str, Any]], facts: dict[str, Any]
) -> dict[str, Any]:
    """Years of residence come from the registration history, not from the applicant."""
    facts = dict(facts)
    if any(i["code"] == RESIDENCE_ITEM for i in table_items):
        if RESIDENCE_ITEM in facts:
            raise invalid(
                "derived-fact",
                f"{RESIDENCE_ITEM} is derived from the registration history; do not supply it",
            )
        history = await registrations.history(session, person_id)
        facts[RESIDENCE_ITEM] = residence_years(
            [(r.arrival_date, r.departure_date) for r in history], china_today()
        )
    return facts


async def apply(ctx: ServiceContext, principal: Principal, body: PointsApply) -> dict[str, Any]:
    principal.ensure_covers(body.town_code)
    try:
        async with ctx.db.transaction() as session:
            person = await persons.get_visible(session, principal, body.person_id)
            table = await session.get(ScoringTable, body.table_version)
            if table is None:
                raise not_found("scoring table", body.table_version)
            reg = await persons.active_registration(session, person.id)
            if reg is None or not reg.grid_code.startswith(body.town_code):
                raise invalid(
                    "not-resident-in-town",
                    f"the applicant has no current registration in town {body.town_code}",
                )
            facts = await _facts_with_residence(session, person.id, table.items, body.facts)
            lines, total = score(table.items, facts)
            app = PointsApplication(
                id=new_id(),
                person_id=person.id,
                year=body.year,
                town_code=body.town_code,
                purpose=body.purpose,
                table_version=table.version,
                facts=facts,
                lines=lines,
                score=total,
            )
            session.add(app)
            await session.flush()
            return _app_out(app)
    except IntegrityError:
        raise conflict(
            "application-exists",
            f"the person already applied for {body.purpose} in {body.year}",
        ) from None


async def recompute(ctx: ServiceContext, principal: Principal, app_id: str) -> dict[str, Any]:
    """Score the stored facts again with the stored table version (same result)."""
    async with ctx.db.sessions() as session:
        app = await session.get(PointsApplication, app_id)
        if app is None:
            raise not_found("points application", app_id)
        ensure_visible(principal, app.town_code, "points application", app_id)
        table = await session.get(ScoringTable, app.table_version)
        assert table is not None
        lines, total = score(table.items, app.facts)
    return {
        "application_id": app.id,
        "table_version": app.table_version,
        "score": total,
        "lines": lines,
        "stored_score": app.score,
        "unchanged": total == app.score and lines == app.lines,
    }


async def ranking(
    ctx: ServiceContext, principal: Principal, year: int, town_code: str, purpose: str
) -> dict[str, Any]:
    principal.ensure_covers(town_code)
    async with ctx.db.sessions() as session:
        quota = await session.get(Quota, (year, town_code, purpose))
        rows = (
            await session.execute(
                select(PointsApplication, Person.name)
                .join(Person, Person.id == PointsApplication.person_id)
                .where(
                    PointsApplication.year == year,
                    PointsApplication.town_code == town_code,
                    PointsApplication.purpose == purpose,
                )
            )
        ).all()
        versions = {app.table_version for app, _ in rows}
        tie_break = ["score_desc", "residence_years_desc", "submitted_at_asc", "id_asc"]
        if len(versions) == 1:
            table = await session.get(ScoringTable, versions.pop())
            if table is not None:
                tie_break = list(table.tie_break)
    names = {app.id: name for app, name in rows}
    ordered = rank([app for app, _ in rows], tie_break)
    limit = quota.quota if quota else 0
    entries = [
        RankingEntry(
            rank=i + 1,
            application_id=app.id,
            person_id=app.person_id,
            masked_name=mask_name(names[app.id]),
            score=app.score,
            within_quota=i < limit,
        )
        for i, app in enumerate(ordered)
    ]
    return RankingOut(
        year=year,
        town_code=town_code,
        purpose=purpose,
        quota=limit,
        tie_break=tie_break,
        entries=entries,
    ).model_dump(mode="json")
