"""Routing events to departments: a case per event and one dispatch per responsible department.

A batch of events is routed with set-based writes (one statement per table for the whole
batch). Rules and departments are kept in memory and reloaded when a cheap stamp read from
the database in the routing transaction changes, so a change made on any replica is seen by
the next batch everywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client import Counter
from sqlalchemy import func, insert, select, union
from sqlalchemy.ext.asyncio import AsyncSession

from gridgov_common.db import utcnow
from gridgov_common.events import CloudEvent, make_event
from gridgov_common.events.notify import EventUnrouted
from gridgov_common.outbox import record_many

from .departments import DEPARTMENT_TYPES, active_departments, matching_prefix
from .dispatches import (
    SOURCE,
    Deadlines,
    NewDispatch,
    Row,
    event_json,
    insert_dispatches,
    new_id,
    plan_dispatch,
)
from .dispatches import source_subject as subject_of
from .models import Case, Department, KnownRegion, RoutingRule, UnroutedEvent
from .models import tables as notify_tables
from .rules import current_rules, rule_matches
from .workcal import WorkCalendar

log = logging.getLogger("gridgov.notify")

UNROUTED = Counter("gridgov_notify_unrouted_total", "Events that matched no department", ["type"])


def routing_stamp() -> Any:
    """Changes whenever a department or a rule changes: every department change bumps its
    version and adds nothing else, every rule change adds a version row; none is deleted."""
    return select(
        select(func.count()).select_from(Department).scalar_subquery(),
        select(func.coalesce(func.sum(Department.version), 0)).scalar_subquery(),
        select(func.count()).select_from(RoutingRule).scalar_subquery(),
    )


@dataclass
class RoutingView:
    """Current rules and active departments, as of ``stamp`` (detached ORM objects)."""

    stamp: tuple[int, ...] | None = None
    rules: dict[str, list[RoutingRule]] = field(default_factory=dict)
    departments: list[Department] = field(default_factory=list)

    async def refresh(self, session: AsyncSession) -> RoutingView:
        stamp = tuple((await session.execute(routing_stamp())).one())
        if stamp != self.stamp:
            rules: dict[str, list[RoutingRule]] = {}
            for rule in await current_rules(session):
                rules.setdefault(rule.event_type, []).append(rule)
            departments = await active_departments(session, set(DEPARTMENT_TYPES))
            # Detached at once, so that no rollback of this session can expire them.
            for obj in [*departments, *(r for rs in rules.values() for r in rs)]:
                session.expunge(obj)
            self.rules, self.departments, self.stamp = rules, departments, stamp
        return self


@dataclass
class Region:
    grid_class: str | None
    retired: bool


async def route_events(
    session: AsyncSession,
    events: Sequence[CloudEvent],
    calendar: WorkCalendar,
    view: RoutingView,
    now: datetime | None = None,
) -> None:
    """Create the case and one dispatch per responsible department of each event, or report it
    unrouted; an event already routed or reported (a redelivery) is skipped."""
    now = now or utcnow()
    await view.refresh(session)
    ids = [evt.id for evt in events]
    seen = union(
        select(Case.source_event_id).where(Case.source_event_id.in_(ids)),
        select(UnroutedEvent.source_event_id).where(UnroutedEvent.source_event_id.in_(ids)),
    )
    routed = set((await session.scalars(select(seen.subquery().c[0]))).all())
    codes = {code for evt in events if (code := grid_of(evt))}
    regions = {
        code: Region(grid_class, status == "retired")
        for code, grid_class, status in (
            await session.execute(
                select(KnownRegion.code, KnownRegion.grid_class, KnownRegion.status).where(
                    KnownRegion.code.in_(codes)
                )
            )
        ).all()
    }
    deadlines = Deadlines(now, calendar)
    cases: list[Row] = []
    dispatches: list[NewDispatch] = []
    unrouted: list[tuple[Row, CloudEvent]] = []
    for evt in events:
        if evt.id in routed:
            continue
        routed.add(evt.id)
        grid_code = grid_of(evt)
        region = regions.get(grid_code) if grid_code else None
        matched = [
            r
            for r in view.rules.get(evt.type, [])
            if rule_matches(r, evt.data, region.grid_class if region else None)
        ]
        plan = plan_departments(view.departments, matched, grid_code)
        if not plan:
            unrouted.append(unrouted_event(evt, grid_code, matched, now))
            continue
        case = Row.of(
            Case.__table__,
            id=new_id("case"),
            source_event_id=evt.id,
            source_event_type=evt.type,
            source_subject=subject_of(evt),
            grid_code=grid_code,
            event=evt.model_dump(mode="json", exclude_none=True),
            created_at=now,
        )
        cases.append(case)
        case_json = event_json(case.event)
        note = " (grid is retired)" if region and region.retired else ""
        for dept, rule, prefix in plan:
            dispatches.append(
                plan_dispatch(
                    case,
                    dept,
                    rule_id=rule.rule_id,
                    rule_version=rule.version,
                    matched_prefix=prefix,
                    reason=(
                        f"rule {rule.rule_id} v{rule.version} sends {evt.type} to {dept.type}; "
                        f"jurisdiction {prefix} covers grid {grid_code}{note}"
                    ),
                    ack_sla=rule.ack_sla,
                    feedback_sla=rule.feedback_sla,
                    deadlines=deadlines,
                    case_event_json=case_json,
                )
            )
    if cases:
        await session.execute(insert(Case.__table__), [c.values_for(Case.__table__) for c in cases])
    await insert_dispatches(session, dispatches)
    if unrouted:
        table = UnroutedEvent.__table__
        await session.execute(insert(table), [u.values_for(table) for u, _ in unrouted])
        await record_many(session, notify_tables, [e for _, e in unrouted])


def grid_of(evt: CloudEvent) -> str | None:
    return evt.gridcode or evt.data.get("grid_code")


def plan_departments(
    departments: list[Department], matched: list[RoutingRule], grid_code: str | None
) -> list[tuple[Department, RoutingRule, str]]:
    """Per matched rule and department type: the most specific department(s) covering the grid."""
    plan: list[tuple[Department, RoutingRule, str]] = []
    if not grid_code:
        return plan
    chosen: set[str] = set()
    for rule in matched:
        for dtype in rule.department_types:
            cands = [(matching_prefix(d, grid_code), d) for d in departments if d.type == dtype]
            found = [(p, d) for p, d in cands if p is not None]
            if not found:
                continue
            longest = max(len(p) for p, _ in found)
            for p, d in sorted(found, key=lambda c: c[1].id):
                if len(p) == longest and d.id not in chosen:
                    chosen.add(d.id)
                    plan.append((d, rule, p))
    return plan


def unrouted_event(
    evt: CloudEvent, grid_code: str | None, matched: list[RoutingRule], now: datetime
) -> tuple[Row, CloudEvent]:
    wanted = sorted({t for r in matched for t in r.department_types})
    reason = (
        "no grid code on the event"
        if not grid_code
        else "no routing rule matches"
        if not matched
        else f"no active department of types {wanted} covers grid {grid_code}"
    )
    UNROUTED.labels(evt.type).inc()
    log.warning("event %s (%s) unrouted: %s", evt.id, evt.type, reason)
    row = Row.of(
        UnroutedEvent.__table__,
        source_event_id=evt.id,
        source_event_type=evt.type,
        grid_code=grid_code,
        reason=reason,
        event=evt.model_dump(mode="json"),
        at=now,
    )
    payload = EventUnrouted(
        source_event_id=evt.id,
        source_event_type=evt.type,
        grid_code=grid_code,
        reason=reason,
        at=now,
    )
    return row, make_event(payload, source=SOURCE, subject=evt.id, gridcode=grid_code)
