"""Hazards (隐患) and their closed loop: open → dispatched → acknowledged →
rectification_reported → closed (only by a passing re-inspection), with rework and overdue."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gridgov_common.errors import conflict
from gridgov_common.events import EventPayload
from gridgov_common.events.inspection import HazardReported, HazardStateChanged, VenueRef
from gridgov_common.events.notify import DispatchStateChanged

from . import catalogue
from .models import Checkpoint, Hazard, HazardHistory, Inspection, Venue
from .settings import Settings


class Publisher(Protocol):
    async def publish(
        self, session: AsyncSession, payload: EventPayload, *, subject: str, gridcode: str | None
    ) -> Any: ...


OPEN_STATES = ("open", "dispatched", "acknowledged", "rectification_reported", "overdue")
ALLOWED: dict[str | None, set[str]] = {
    None: {"open"},
    "open": {"dispatched", "acknowledged", "rectification_reported", "closed", "overdue"},
    "dispatched": {"acknowledged", "rectification_reported", "closed", "overdue"},
    "acknowledged": {"rectification_reported", "closed", "overdue"},
    "rectification_reported": {"closed", "open"},
    "overdue": {"acknowledged", "rectification_reported", "closed"},
    "closed": set(),
}


def can_move(from_state: str | None, to_state: str) -> bool:
    return to_state in ALLOWED.get(from_state, set())


def venue_ref(v: Venue) -> VenueRef:
    return VenueRef(
        venue_id=v.id,
        name=v.name,
        venue_type=v.venue_type,
        address=v.address,
        location=(v.lon, v.lat),
    )


async def transition(
    session: AsyncSession,
    pub: Publisher,
    hazard: Hazard,
    to_state: str,
    *,
    actor: str,
    reason: str,
    at: datetime,
    rework: bool = False,
) -> None:
    """Move a hazard, recording who, when and why, and publish the change (same transaction)."""
    from_state = hazard.state
    if not can_move(from_state, to_state):
        raise conflict(
            "hazard-transition-not-allowed",
            f"hazard {hazard.id} is {from_state}; it cannot become {to_state}",
        )
    hazard.state = to_state
    if to_state == "overdue":
        hazard.was_overdue = True
    if to_state == "closed":
        hazard.closed_at = at
        hazard.closed_by = actor
    session.add(
        HazardHistory(
            hazard_id=hazard.id,
            from_state=from_state,
            to_state=to_state,
            actor=actor,
            reason=reason,
            rework=rework,
            at=at,
        )
    )
    await pub.publish(
        session,
        HazardStateChanged(
            hazard_id=hazard.id,
            grid_code=hazard.grid_code,
            from_state=from_state,  # type: ignore[arg-type]
            to_state=to_state,  # type: ignore[arg-type]
            actor=actor,
            reason=reason,
            at=at,
            rework=rework,
        ),
        subject=hazard.id,
        gridcode=hazard.grid_code,
    )


async def open_hazard(
    session: AsyncSession,
    pub: Publisher,
    settings: Settings,
    *,
    cp: Checkpoint,
    venue: Venue,
    inspection: Inspection,
    item: dict[str, Any],
    severity: str,
    note: str | None,
    photo_hashes: list[str],
    at: datetime,
) -> Hazard:
    days = settings.hazard_deadline_working_days.get(severity, 3)
    hazard = Hazard(
        id=str(uuid.uuid4()),
        checkpoint_id=cp.id,
        venue_id=venue.id,
        venue_type=venue.venue_type,
        inspection_id=inspection.id,
        grid_code=cp.grid_code,
        community_code=cp.community_code,
        street_code=cp.street_code,
        item_code=item["code"],
        item_title=item["title"],
        severity=severity,
        description=note or item["title"],
        photo_hashes=photo_hashes,
        state="open",
        deadline=catalogue.add_working_days(at, days, settings.holidays),
        reported_by=inspection.inspector,
        rework_count=0,
        was_overdue=False,
        created_at=at,
    )
    session.add(hazard)
    session.add(
        HazardHistory(
            hazard_id=hazard.id,
            from_state=None,
            to_state="open",
            actor=inspection.inspector,
            reason=f"item {item['code']} failed in inspection {inspection.id}",
            at=at,
        )
    )
    await pub.publish(
        session,
        HazardReported(
            hazard_id=hazard.id,
            checkpoint_id=cp.id,
            inspection_id=inspection.id,
            venue=venue_ref(venue),
            grid_code=cp.grid_code,
            severity=severity,  # type: ignore[arg-type]
            item_code=item["code"],
            item_title=item["title"],
            description=hazard.description,
            deadline=hazard.deadline,
            reported_by=inspection.inspector,
            photo_hashes=photo_hashes,
        ),
        subject=hazard.id,
        gridcode=cp.grid_code,
    )
    await pub.publish(
        session,
        HazardStateChanged(
            hazard_id=hazard.id,
            grid_code=cp.grid_code,
            from_state=None,
            to_state="open",
            actor=inspection.inspector,
            reason="reported by inspection",
            at=at,
        ),
        subject=hazard.id,
        gridcode=cp.grid_code,
    )
    return hazard


async def open_hazards_of(session: AsyncSession, checkpoint_id: str) -> list[Hazard]:
    return list(
        await session.scalars(
            select(Hazard)
            .where(Hazard.checkpoint_id == checkpoint_id, Hazard.state.in_(OPEN_STATES))
            .order_by(Hazard.created_at)
        )
    )


async def count_open(session: AsyncSession, checkpoint_id: str) -> int:
    return int(
        await session.scalar(
            select(func.count())
            .select_from(Hazard)
            .where(Hazard.checkpoint_id == checkpoint_id, Hazard.state.in_(OPEN_STATES))
        )
        or 0
    )


async def apply_reinspection(
    session: AsyncSession,
    pub: Publisher,
    open_hazards: list[Hazard],
    answers: dict[str, Any],
    *,
    actor: str,
    inspection_id: str,
    at: datetime,
) -> tuple[list[str], list[str]]:
    """Close hazards whose items now pass; send reported-but-failing ones back to open."""
    closed: list[str] = []
    reopened: list[str] = []
    for h in open_hazards:
        answer = answers.get(h.item_code)
        if answer is None or answer.result == "na":
            continue
        if answer.result == "pass":
            h.outcome = (
                "confirmed"
                if h.state == "rectification_reported" or h.rework_count
                else ("overturned")
            )
            await transition(
                session,
                pub,
                h,
                "closed",
                actor=actor,
                at=at,
                reason=f"re-inspection {inspection_id} passed item {h.item_code}"
                + ("" if h.outcome == "confirmed" else " (no rectification was reported)"),
            )
            closed.append(h.id)
        elif h.state == "rectification_reported":
            h.rework_count += 1
            h.outcome = "confirmed"
            await transition(
                session,
                pub,
                h,
                "open",
                actor=actor,
                at=at,
                rework=True,
                reason=f"re-inspection {inspection_id} failed item {h.item_code} "
                "after rectification was reported (rework)",
            )
            reopened.append(h.id)
        else:
            h.outcome = "confirmed"
    return closed, reopened


# --- notify.v1: dispatch progress moves hazards along ---------------------------------------

HAZARD_REPORTED = "gridgov.inspection.hazard.reported"


def dispatch_step(payload: DispatchStateChanged) -> str | None:
    """What a department's step that leaves the hazard's state alone says in its history."""
    name = payload.department_name
    if payload.to_state == "acknowledged":
        return f"{name} acknowledged the dispatch"
    if payload.to_state == "escalated":
        return f"{name} escalated to its parent department" + (
            f": {payload.note}" if payload.note else ""
        )
    if payload.to_state == "failed":
        return f"delivery to {name} failed"
    if payload.to_state == "feedback_received":
        return f"{name} fed back {payload.feedback_result}" + (
            f": {payload.note}" if payload.note else ""
        )
    return None


def target_for_dispatch(hazard_state: str, dispatch_state: str, feedback: str | None) -> str | None:
    """Where a dispatch transition takes the hazard (None: no change)."""
    if dispatch_state in ("pending", "delivered"):
        return "dispatched" if hazard_state == "open" else None
    if dispatch_state == "acknowledged":
        return "acknowledged" if hazard_state in ("open", "dispatched", "overdue") else None
    if dispatch_state == "feedback_received" and feedback == "rectified":
        ok = ("open", "dispatched", "acknowledged", "overdue")
        return "rectification_reported" if hazard_state in ok else None
    return None
