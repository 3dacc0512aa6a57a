"""Green/yellow/red, misses (漏检) and overdue hazards, computed set-based in SQL.

The colour of every checkpoint is one SQL expression over columns kept on the row
(``open_hazards``, ``due_at``), so a sweep over a million checkpoints is a handful of
statements, never a Python loop per row. Events for the rows that changed go into the
outbox in bulk, in the same transaction.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, insert, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gridgov_common.db import region_filter, utcnow
from gridgov_common.events import EventPayload, make_event
from gridgov_common.events.inspection import CheckpointMissed, CheckpointStatusChanged, VenueRef
from gridgov_common.lease import Lease
from gridgov_common.outbox import _PENDING_FLAG

from . import hazards
from .models import Checkpoint, Hazard, Miss, Venue

log = logging.getLogger("gridgov.inspection.status")

COLOURS_HEX = {"green": "#2e7d32", "yellow": "#f9a825", "red": "#c62828"}
BATCH = 5000


def colour_expr(now: datetime) -> Any:
    return case(
        (Checkpoint.open_hazards > 0, literal("red")),
        (and_(Checkpoint.active.is_(True), Checkpoint.due_at <= now), literal("yellow")),
        else_=literal("green"),
    )


def _newly_missed(now: datetime) -> Any:
    return and_(
        Checkpoint.active.is_(True),
        Checkpoint.due_at <= now,
        or_(Checkpoint.missed_due_at.is_(None), Checkpoint.missed_due_at != Checkpoint.due_at),
    )


async def _bulk_publish(
    session: AsyncSession, ctx: Any, events: list[tuple[EventPayload, str, str]]
) -> None:
    """Outbox rows for many events at once (executemany), same transaction as the change."""
    outbox = ctx.tables.outbox
    source = ctx.settings.service_name
    now = utcnow()
    for start in range(0, len(events), BATCH):
        rows = []
        for payload, subject, grid in events[start : start + BATCH]:
            evt = make_event(payload, source=source, subject=subject, gridcode=grid)
            rows.append(
                {
                    "event_id": evt.id,
                    "topic": payload.topic,
                    "key": evt.key,
                    "body": evt.model_dump_json(exclude_none=True),
                    "created_at": now,
                }
            )
        await session.execute(insert(outbox), rows)
    if events:
        session.info[_PENDING_FLAG] = True  # wakes the relay, as outbox.record does


async def detect_misses(session: AsyncSession, ctx: Any, now: datetime) -> int:
    run_id = str(uuid.uuid4())
    cond = _newly_missed(now)
    # 1. Claim the misses: UPDATE first, so a concurrent sweep (PostgreSQL re-checks the
    #    WHERE after waiting for our row locks) skips rows this one took.
    claimed = (
        await session.execute(
            update(Checkpoint)
            .where(cond)
            .values(missed_due_at=Checkpoint.due_at)
            .returning(
                Checkpoint.id,
                Checkpoint.due_at,
                Checkpoint.grid_code,
                Checkpoint.assigned_inspector,
            )
            .execution_options(synchronize_session=False)
        )
    ).all()
    if not claimed:
        return 0
    # 2. One miss row per (checkpoint, due_at): the unique key backs "once per miss".
    for start in range(0, len(claimed), BATCH):
        await session.execute(
            insert(Miss),
            [
                {
                    "checkpoint_id": c[0],
                    "due_at": c[1],
                    "grid_code": c[2],
                    "inspector": c[3],
                    "run_id": run_id,
                    "detected_at": now,
                }
                for c in claimed[start : start + BATCH]
            ],
        )
    rows = (
        await session.execute(
            select(
                Miss.checkpoint_id,
                Miss.due_at,
                Miss.grid_code,
                Checkpoint.effective_cycle_days,
                Checkpoint.last_inspected_at,
                Venue.id,
                Venue.name,
                Venue.venue_type,
                Venue.address,
                Venue.lon,
                Venue.lat,
            )
            .join(Checkpoint, Checkpoint.id == Miss.checkpoint_id)
            .join(Venue, Venue.id == Checkpoint.venue_id)
            .where(Miss.run_id == run_id)
        )
    ).all()
    events: list[tuple[EventPayload, str, str]] = [
        (
            CheckpointMissed(
                checkpoint_id=r[0],
                due_at=r[1],
                grid_code=r[2],
                cycle_days=r[3],
                last_inspected_at=r[4],
                venue=VenueRef(
                    venue_id=r[5], name=r[6], venue_type=r[7], address=r[8], location=(r[9], r[10])
                ),
            ),
            r[0],
            r[2],
        )
        for r in rows
    ]
    await _bulk_publish(session, ctx, events)
    return len(events)


async def refresh_colours(session: AsyncSession, ctx: Any, now: datetime) -> int:
    computed = colour_expr(now)
    changed = (
        await session.execute(
            select(
                Checkpoint.id,
                Checkpoint.venue_id,
                Checkpoint.grid_code,
                Checkpoint.lon,
                Checkpoint.lat,
                Checkpoint.colour,
                computed,
            )
            .where(Checkpoint.colour != computed)
            # PostgreSQL: a concurrent sweep waits here and then skips the rows we changed.
            .with_for_update()
        )
    ).all()
    if not changed:
        return 0
    # Update by primary key (rows already locked above): no second scan of the table.
    by_colour: dict[str, list[str]] = {}
    for r in changed:
        by_colour.setdefault(r[6], []).append(r[0])
    for colour, ids in by_colour.items():
        for start in range(0, len(ids), BATCH):
            await session.execute(
                update(Checkpoint)
                .where(Checkpoint.id.in_(ids[start : start + BATCH]))
                .values(colour=colour)
                .execution_options(synchronize_session=False)
            )
    events: list[tuple[EventPayload, str, str]] = [
        (
            CheckpointStatusChanged(
                checkpoint_id=r[0],
                venue_id=r[1],
                grid_code=r[2],
                location=(r[3], r[4]),
                from_colour=r[5],
                to_colour=r[6],
                at=now,
            ),
            r[0],
            r[2],
        )
        for r in changed
    ]
    await _bulk_publish(session, ctx, events)
    return len(changed)


async def mark_overdue(session: AsyncSession, ctx: Any, now: datetime) -> int:
    late = (
        await session.scalars(
            select(Hazard)
            .where(Hazard.state.in_(("open", "dispatched", "acknowledged")), Hazard.deadline < now)
            .with_for_update()
        )
    ).all()
    for h in late:
        await hazards.transition(
            session,
            ctx,
            h,
            "overdue",
            actor="system",
            at=now,
            reason=f"rectification deadline {h.deadline.isoformat()} passed",
        )
    return len(late)


async def sweep(ctx: Any, now: datetime | None = None) -> dict[str, int]:
    """One pass: overdue hazards, newly missed checkpoints, colour changes (one transaction)."""
    now = now or utcnow()
    async with ctx.db.transaction() as session:
        overdue = await mark_overdue(session, ctx, now)
        missed = await detect_misses(session, ctx, now)
        changed = await refresh_colours(session, ctx, now)
    return {"overdue": overdue, "missed": missed, "colour_changes": changed}


async def sweeper(ctx: Any) -> None:
    """Worker: only the lease holder sweeps, so several replicas are safe."""
    lease = Lease(ctx.db, ctx.tables, "inspection-sweep", ttl=timedelta(seconds=60))
    interval = ctx.settings.sweep_interval_seconds
    while True:
        try:
            if ctx.settings.sweep_enabled and await lease.acquire():
                result = await sweep(ctx)
                if any(result.values()):
                    log.info("sweep: %s", result)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("sweep failed: %s", exc)
        await asyncio.sleep(interval)


# --- map -----------------------------------------------------------------------------------


async def map_features(
    session: AsyncSession,
    prefixes: list[str] | None,
    colour: str | None,
    limit: int,
    cursor: str | None,
    now: datetime,
) -> dict[str, Any]:
    computed = colour_expr(now).label("status")
    q = (
        select(
            Checkpoint.id,
            Checkpoint.name,
            Checkpoint.venue_id,
            Checkpoint.venue_type,
            Checkpoint.grid_code,
            Checkpoint.lon,
            Checkpoint.lat,
            Checkpoint.due_at,
            Checkpoint.open_hazards,
            Checkpoint.last_inspected_at,
            computed,
        )
        .where(region_filter(Checkpoint.grid_code, prefixes))
        .order_by(Checkpoint.id)
        .limit(limit + 1)
    )
    if colour:
        q = q.where(colour_expr(now) == colour)
    if cursor:
        q = q.where(Checkpoint.id > cursor)
    rows = (await session.execute(q)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": r.id,
                "geometry": {"type": "Point", "coordinates": [r.lon, r.lat]},
                "properties": {
                    "name": r.name,
                    "venue_id": r.venue_id,
                    "venue_type": r.venue_type,
                    "grid_code": r.grid_code,
                    "status": r.status,
                    "colour": COLOURS_HEX[r.status],
                    "due_at": r.due_at.isoformat(),
                    "last_inspected_at": r.last_inspected_at.isoformat()
                    if r.last_inspected_at
                    else None,
                    "open_hazards": r.open_hazards,
                },
            }
            for r in rows
        ],
        "next_cursor": rows[-1].id if more and rows else None,
    }


LEVEL_COLUMN = {"grid": "grid_code", "community": "community_code", "street": "street_code"}


async def aggregates(
    session: AsyncSession, prefixes: list[str] | None, level: str, now: datetime
) -> list[dict[str, Any]]:
    col = getattr(Checkpoint, LEVEL_COLUMN[level])
    computed = colour_expr(now)
    counts = (
        await session.execute(
            select(
                col.label("code"),
                func.count().label("total"),
                func.sum(case((computed == "green", 1), else_=0)).label("green"),
                func.sum(case((computed == "yellow", 1), else_=0)).label("yellow"),
                func.sum(case((computed == "red", 1), else_=0)).label("red"),
            )
            .where(Checkpoint.active.is_(True), region_filter(Checkpoint.grid_code, prefixes))
            .group_by(col)
            .order_by(col)
        )
    ).all()
    hcol = getattr(Hazard, LEVEL_COLUMN[level])
    hz = (
        await session.execute(
            select(hcol, Hazard.venue_type, Hazard.severity, func.count())
            .where(Hazard.state.in_(hazards.OPEN_STATES), region_filter(Hazard.grid_code, prefixes))
            .group_by(hcol, Hazard.venue_type, Hazard.severity)
        )
    ).all()
    by_code: dict[str, list[dict[str, Any]]] = {}
    for code, vtype, severity, n in hz:
        by_code.setdefault(code, []).append(
            {"venue_type": vtype, "severity": severity, "count": int(n)}
        )
    return [
        {
            "code": r.code,
            "level": level,
            "total": int(r.total),
            "green": int(r.green or 0),
            "yellow": int(r.yellow or 0),
            "red": int(r.red or 0),
            "missed_rate": round((r.yellow or 0) / r.total, 4) if r.total else 0.0,
            "open_hazards": sum(h["count"] for h in by_code.get(r.code, [])),
            "open_hazards_by_type": by_code.get(r.code, []),
        }
        for r in counts
    ]
