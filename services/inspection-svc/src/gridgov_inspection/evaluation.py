"""量化考评: per-inspector evaluation, spot checks (抽查), per-region closure and rework rates."""

from __future__ import annotations

import random
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gridgov_common.db import region_filter
from gridgov_common.errors import invalid

from .inspections import PHOTO_RULES, PRESENCE_RULES
from .models import Hazard, HazardHistory, Inspection, Miss, Rejection, SpotCheck


async def inspectors(
    session: AsyncSession, since: datetime, until: datetime, prefixes: list[str] | None
) -> list[dict[str, Any]]:
    """Per inspector in [since, until).

    due = inspected (non-re-inspection, non-spot-check) + missed; on_time = inspections done
    by their due date; missed = misses whose due date fell in the period (attributed to the
    checkpoint's assigned inspector); hazards found / confirmed / overturned (re-inspection
    passed before any rectification); rework = re-inspections by this inspector that sent a
    reported rectification back to open; rejections by rule family; spot-check agreement.
    """
    stats: dict[str, dict[str, Any]] = {}

    def row(who: str) -> dict[str, Any]:
        return stats.setdefault(
            who,
            {
                "inspector": who,
                "due": 0,
                "inspected": 0,
                "on_time": 0,
                "late": 0,
                "missed": 0,
                "hazards_found": 0,
                "hazards_confirmed": 0,
                "hazards_overturned": 0,
                "rework": 0,
                "photo_rejections": 0,
                "presence_rejections": 0,
                "spot_checks": 0,
                "spot_checks_agreed": 0,
                "agreement_rate": None,
            },
        )

    region = region_filter(Inspection.grid_code, prefixes)
    regular = and_(Inspection.is_reinspection.is_(False), Inspection.spot_check_id.is_(None))
    for who, n, on_time in (
        await session.execute(
            select(
                Inspection.inspector,
                func.count(),
                func.sum(case((Inspection.on_time.is_(True), 1), else_=0)),
            )
            .where(Inspection.created_at >= since, Inspection.created_at < until, regular, region)
            .group_by(Inspection.inspector)
        )
    ).all():
        r = row(who)
        r["inspected"], r["on_time"] = int(n), int(on_time or 0)
        r["late"] = r["inspected"] - r["on_time"]
    for who, n in (
        await session.execute(
            select(Miss.inspector, func.count())
            .where(
                Miss.due_at >= since,
                Miss.due_at < until,
                Miss.inspector.is_not(None),
                region_filter(Miss.grid_code, prefixes),
            )
            .group_by(Miss.inspector)
        )
    ).all():
        row(who)["missed"] = int(n)  # type: ignore[arg-type]  # NULL inspectors are left out
    for who, n, confirmed, overturned in (
        await session.execute(
            select(
                Hazard.reported_by,
                func.count(),
                func.sum(case((Hazard.outcome == "confirmed", 1), else_=0)),
                func.sum(case((Hazard.outcome == "overturned", 1), else_=0)),
            )
            .where(
                Hazard.created_at >= since,
                Hazard.created_at < until,
                region_filter(Hazard.grid_code, prefixes),
            )
            .group_by(Hazard.reported_by)
        )
    ).all():
        r = row(who)
        r["hazards_found"], r["hazards_confirmed"] = int(n), int(confirmed or 0)
        r["hazards_overturned"] = int(overturned or 0)
    for who, n in (
        await session.execute(
            select(HazardHistory.actor, func.count())
            .join(Hazard, Hazard.id == HazardHistory.hazard_id)
            .where(
                HazardHistory.rework.is_(True),
                HazardHistory.at >= since,
                HazardHistory.at < until,
                region_filter(Hazard.grid_code, prefixes),
            )
            .group_by(HazardHistory.actor)
        )
    ).all():
        row(who)["rework"] = int(n)
    for who, kind, n in (
        await session.execute(
            select(Rejection.inspector, Rejection.kind, func.count())
            .where(
                Rejection.at >= since,
                Rejection.at < until,
                region_filter(Rejection.grid_code, prefixes),
            )
            .group_by(Rejection.inspector, Rejection.kind)
        )
    ).all():
        r = row(who)
        if kind in PHOTO_RULES:
            r["photo_rejections"] += int(n)
        elif kind in PRESENCE_RULES:
            r["presence_rejections"] += int(n)
    for who, n, agreed in (
        await session.execute(
            select(
                SpotCheck.original_inspector,
                func.count(),
                func.sum(case((SpotCheck.agreed.is_(True), 1), else_=0)),
            )
            .where(
                SpotCheck.state == "done",
                SpotCheck.completed_at >= since,
                SpotCheck.completed_at < until,
                region_filter(SpotCheck.grid_code, prefixes),
            )
            .group_by(SpotCheck.original_inspector)
        )
    ).all():
        r = row(who)
        r["spot_checks"], r["spot_checks_agreed"] = int(n), int(agreed or 0)
        r["agreement_rate"] = round(r["spot_checks_agreed"] / r["spot_checks"], 4)
    for r in stats.values():
        r["due"] = r["inspected"] + r["missed"]
    return sorted(stats.values(), key=lambda r: r["inspector"])


async def regions(
    session: AsyncSession,
    since: datetime,
    until: datetime,
    level: str,
    prefixes: list[str] | None,
) -> list[dict[str, Any]]:
    """Per grid/community/street: on-time closure = closed by deadline / hazards due in the
    period; rework rate = hazards reported in the period that needed rework / reported."""
    col = {
        "grid": Hazard.grid_code,
        "community": Hazard.community_code,
        "street": Hazard.street_code,
    }[level]
    region = region_filter(Hazard.grid_code, prefixes)
    out: dict[str, dict[str, Any]] = {}
    for code, due, on_time in (
        await session.execute(
            select(
                col,
                func.count(),
                func.sum(
                    case(
                        (
                            and_(
                                Hazard.closed_at.is_not(None), Hazard.closed_at <= Hazard.deadline
                            ),
                            1,
                        ),
                        else_=0,
                    )
                ),
            )
            .where(Hazard.deadline >= since, Hazard.deadline < until, region)
            .group_by(col)
        )
    ).all():
        out[code] = {
            "code": code,
            "level": level,
            "hazards_due": int(due),
            "closed_on_time": int(on_time or 0),
        }
    for code, n, rework in (
        await session.execute(
            select(col, func.count(), func.sum(case((Hazard.rework_count > 0, 1), else_=0)))
            .where(Hazard.created_at >= since, Hazard.created_at < until, region)
            .group_by(col)
        )
    ).all():
        r = out.setdefault(
            code, {"code": code, "level": level, "hazards_due": 0, "closed_on_time": 0}
        )
        r["hazards_reported"], r["hazards_with_rework"] = int(n), int(rework or 0)
    for r in out.values():
        r.setdefault("hazards_reported", 0)
        r.setdefault("hazards_with_rework", 0)
        r["on_time_closure_rate"] = (
            round(r["closed_on_time"] / r["hazards_due"], 4) if r["hazards_due"] else None
        )
        r["rework_rate"] = (
            round(r["hazards_with_rework"] / r["hazards_reported"], 4)
            if r["hazards_reported"]
            else None
        )
    return sorted(out.values(), key=lambda r: r["code"] or "")


async def sample_spot_checks(
    session: AsyncSession,
    since: datetime,
    until: datetime,
    pool: list[str],
    share: float,
    prefixes: list[str] | None,
    seed: int | None = None,
) -> list[SpotCheck]:
    """Sample ``share`` of the passed, not yet sampled inspections in the period (at least
    one if any) and assign each to a pool inspector other than the original one."""
    if len(set(pool)) < 2:
        raise invalid("spot-check-pool-too-small", "name at least two inspectors in the pool")
    sampled = select(SpotCheck.inspection_id)
    candidates = (
        await session.scalars(
            select(Inspection)
            .where(
                Inspection.passed.is_(True),
                Inspection.spot_check_id.is_(None),
                Inspection.created_at >= since,
                Inspection.created_at < until,
                Inspection.id.not_in(sampled),
                region_filter(Inspection.grid_code, prefixes),
            )
            .order_by(Inspection.id)
        )
    ).all()
    if not candidates:
        return []
    rng = random.Random(seed)  # noqa: S311 - sampling, not security
    k = max(1, round(len(candidates) * share))
    chosen = rng.sample(list(candidates), min(k, len(candidates)))
    checks = []
    for insp in chosen:
        others = sorted(set(pool) - {insp.inspector})
        if not others:
            continue
        sc = SpotCheck(
            id=str(uuid.uuid4()),
            inspection_id=insp.id,
            checkpoint_id=insp.checkpoint_id,
            grid_code=insp.grid_code,
            original_inspector=insp.inspector,
            assigned_inspector=rng.choice(others),
            state="pending",
        )
        session.add(sc)
        checks.append(sc)
    await session.flush()
    return checks
