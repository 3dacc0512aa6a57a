"""Routing an event to departments, dispatch state transitions, acknowledgement, feedback,
re-routing and escalation. Plain functions on a session: the caller owns the transaction."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from prometheus_client import Counter
from sqlalchemy import Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gridgov_common.auth import Principal
from gridgov_common.errors import Problem, conflict, not_found
from gridgov_common.events import CloudEvent, make_event
from gridgov_common.events.notify import DispatchStateChanged
from gridgov_common.lease import REPLICA_ID
from gridgov_common.outbox import record, record_many

from .models import Case, Delivery, Department, Dispatch, DispatchLog
from .models import tables as notify_tables
from .workcal import Sla, WorkCalendar

log = logging.getLogger("gridgov.notify")
SOURCE = "notify-svc"
NEW_DELIVERIES = "notify_new_deliveries"
# New deliveries are claimed by the replica that created them and handed to its worker on
# commit (no claim round-trip); if that replica dies, the claim expires and others take over.
DIRECT_HOLDER = f"{REPLICA_ID}:direct"
DIRECT_CLAIM = timedelta(seconds=60)

DISPATCHED = Counter(
    "gridgov_notify_dispatches_total", "Dispatches created", ["type", "department_type"]
)
ESCALATIONS = Counter("gridgov_notify_escalations_total", "Dispatches escalated", ["kind"])

OPEN_FOR_ACK = ("pending", "delivered", "failed")


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def source_subject(evt: CloudEvent) -> str | None:
    data = evt.data
    for key in ("hazard_id", "checkpoint_id", "house_id", "person_id"):
        if data.get(key):
            return str(data[key])
    return evt.subject


def transition(
    d: Dispatch,
    case: Case,
    dept: Department,
    from_state: str | None,
    *,
    at: datetime,
    actor: str | None = None,
    note: str | None = None,
) -> tuple[dict[str, Any], CloudEvent]:
    """The dispatch-log row and the notify.v1 event of a transition already applied to ``d``."""
    payload = DispatchStateChanged(
        dispatch_id=d.id,
        case_id=case.id,
        source_event_id=case.source_event_id,
        source_event_type=case.source_event_type,
        source_subject=case.source_subject,
        grid_code=case.grid_code,
        department_id=dept.id,
        department_name=dept.name,
        department_type=dept.type,
        from_state=from_state,  # type: ignore[arg-type]
        to_state=d.state,  # type: ignore[arg-type]
        at=at,
        actor=actor,
        feedback_result=d.feedback_result if d.state == "feedback_received" else None,  # type: ignore[arg-type]
        note=note,
    )
    data = payload.model_dump(mode="json")
    data["why"] = why(d)
    row = {
        "department_id": dept.id,
        "dispatch_id": d.id,
        "to_state": d.state,
        "data": data,
        "at": at,
    }
    return row, make_event(payload, source=SOURCE, subject=d.id, gridcode=case.grid_code)


async def log_transition(
    session: AsyncSession,
    d: Dispatch,
    case: Case,
    dept: Department,
    from_state: str | None,
    *,
    at: datetime,
    actor: str | None = None,
    note: str | None = None,
) -> None:
    """Record and publish one transition that has already been applied to ``d``."""
    row, evt = transition(d, case, dept, from_state, at=at, actor=actor, note=note)
    await session.execute(insert(DispatchLog.__table__), [row])
    await record(session, notify_tables, evt)


def why(d: Dispatch) -> dict[str, Any]:
    return {
        "rule_id": d.rule_id,
        "rule_version": d.rule_version,
        "matched_prefix": d.matched_prefix,
        "reason": d.reason,
        "escalated_from": d.escalated_from,
        "rerouted_from": d.rerouted_from,
    }


def dispatch_view(d: Dispatch, dept: Department | None = None) -> dict[str, Any]:
    return {
        "id": d.id,
        "case_id": d.case_id,
        "source_event_id": d.source_event_id,
        "department_id": d.department_id,
        "department_name": dept.name if dept else None,
        "department_type": dept.type if dept else None,
        "state": d.state,
        "why": why(d),
        "ack_sla": d.ack_sla,
        "feedback_sla": d.feedback_sla,
        "ack_due_at": d.ack_due_at.isoformat(),
        "feedback_due_at": d.feedback_due_at.isoformat(),
        "created_at": d.created_at.isoformat(),
        "delivered_at": _iso(d.delivered_at),
        "acknowledged_at": _iso(d.acknowledged_at),
        "acknowledged_by": d.acknowledged_by,
        "feedback_at": _iso(d.feedback_at),
        "feedback_by": d.feedback_by,
        "feedback_result": d.feedback_result,
        "feedback_note": d.feedback_note,
        "feedback_photos": list(d.feedback_photos or []),
        "forwarded_to": d.forwarded_to,
        "forward_reason": d.forward_reason,
        "escalated_at": _iso(d.escalated_at),
        "escalation_note": d.escalation_note,
        "failed_at": _iso(d.failed_at),
        "closed_at": _iso(d.closed_at),
    }


def _iso(v: datetime | None) -> str | None:
    return v.isoformat() if v else None


class Row(SimpleNamespace):
    """A row about to be inserted, with the attributes of its ORM class (``dispatch_view``,
    ``transition`` and the delivery worker read either), at a fraction of an ORM object's
    cost: routing builds several per event."""

    @classmethod
    def of(cls, table: Table, **values: Any) -> Row:
        return cls(**{**{c.key: None for c in table.columns}, **values})

    def values_for(self, table: Table) -> dict[str, Any]:
        """Column values for a set-based insert; an unset generated key is left out."""
        return {
            c.key: getattr(self, c.key)
            for c in table.columns
            if not (c.primary_key and getattr(self, c.key) is None)
        }


@dataclass
class NewDispatch:
    """A pending dispatch with its first transition and deliveries, not yet written."""

    dispatch: Row
    log_row: dict[str, Any]
    event: CloudEvent
    deliveries: list[Row]
    event_type: str
    department: Department


class Deadlines:
    """SLA deadlines from one instant, computed once per SLA (routing a batch asks for the same
    few SLAs from the same ``now`` many times, and working-day arithmetic is not free)."""

    def __init__(self, now: datetime, calendar: WorkCalendar) -> None:
        self.now = now
        self.calendar = calendar
        self._cache: dict[str, datetime] = {}

    def __call__(self, sla: str) -> datetime:
        due = self._cache.get(sla)
        if due is None:
            due = self._cache[sla] = Sla.parse(sla).deadline(self.now, self.calendar)
        return due


def event_json(event: dict[str, Any]) -> str:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


def plan_dispatch(
    case: Any,
    dept: Department,
    *,
    rule_id: str,
    rule_version: int,
    matched_prefix: str | None,
    reason: str,
    ack_sla: str,
    feedback_sla: str,
    deadlines: Deadlines,
    escalated_from: str | None = None,
    rerouted_from: str | None = None,
    case_event_json: str | None = None,
) -> NewDispatch:
    """``case`` is a Case or a Row of one; ``case_event_json`` its event, serialised once for
    all its dispatches."""
    now = deadlines.now
    d = Row.of(
        Dispatch.__table__,
        id=new_id("dsp"),
        case_id=case.id,
        department_id=dept.id,
        source_event_id=case.source_event_id,
        state="pending",
        rule_id=rule_id,
        rule_version=rule_version,
        matched_prefix=matched_prefix,
        reason=reason,
        ack_sla=ack_sla,
        feedback_sla=feedback_sla,
        ack_due_at=deadlines(ack_sla),
        feedback_due_at=deadlines(feedback_sla),
        escalated_from=escalated_from,
        rerouted_from=rerouted_from,
        created_at=now,
        feedback_photos=[],
    )
    log_row, evt = transition(d, case, dept, None, at=now)  # type: ignore[arg-type]
    deliveries = []
    for channel in channels_of(dept):
        # Byte for byte json.dumps({"event": ..., "dispatch": ...}) with these separators.
        body = (
            '{"event":'
            + (case_event_json or event_json(case.event))
            + ',"dispatch":'
            + event_json(dispatch_view(d, dept))  # type: ignore[arg-type]
            + "}"
        )
        deliveries.append(
            Row.of(
                Delivery.__table__,
                id=new_id("msg"),
                claimed_by=DIRECT_HOLDER,
                claim_expires_at=now + DIRECT_CLAIM,
                dispatch_id=d.id,
                department_id=dept.id,
                channel=channel,
                target=dept.webhook_url or "",
                body=body,
                state="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
    return NewDispatch(d, log_row, evt, deliveries, case.source_event_type, dept)


async def insert_dispatches(session: AsyncSession, items: list[NewDispatch]) -> None:
    """Write new dispatches, their log rows, deliveries and notify.v1 events: one statement per
    table. Their cases must be written already (foreign key)."""
    if not items:
        return
    await session.execute(
        insert(Dispatch.__table__), [i.dispatch.values_for(Dispatch.__table__) for i in items]
    )
    await session.execute(insert(DispatchLog.__table__), [i.log_row for i in items])
    deliveries = [(d, i.department) for i in items for d in i.deliveries]
    if deliveries:
        await session.execute(
            insert(Delivery.__table__), [d.values_for(Delivery.__table__) for d, _ in deliveries]
        )
        # Handed to this replica's delivery worker after the commit (see main.py).
        session.info.setdefault(NEW_DELIVERIES, []).extend(deliveries)
    await record_many(session, notify_tables, [i.event for i in items])
    for i in items:
        DISPATCHED.labels(i.event_type, i.department.type).inc()


async def create_dispatch(
    session: AsyncSession,
    case: Case,
    dept: Department,
    *,
    rule_id: str,
    rule_version: int,
    matched_prefix: str | None,
    reason: str,
    ack_sla: str,
    feedback_sla: str,
    calendar: WorkCalendar,
    now: datetime,
    escalated_from: str | None = None,
    rerouted_from: str | None = None,
) -> Dispatch | None:
    """A new pending dispatch plus its deliveries; None if the department already has one."""
    existing = await session.scalar(
        select(Dispatch.id).where(Dispatch.case_id == case.id, Dispatch.department_id == dept.id)
    )
    if existing is not None:
        return None
    new = plan_dispatch(
        case,
        dept,
        rule_id=rule_id,
        rule_version=rule_version,
        matched_prefix=matched_prefix,
        reason=reason,
        ack_sla=ack_sla,
        feedback_sla=feedback_sla,
        deadlines=Deadlines(now, calendar),
        escalated_from=escalated_from,
        rerouted_from=rerouted_from,
    )
    await insert_dispatches(session, [new])
    return await session.get(Dispatch, new.dispatch.id)


def channels_of(dept: Department) -> list[str]:
    """Push channels with a delivery row (SSE reads the dispatch log instead)."""
    return ["webhook"] if dept.webhook_url else []


# --- transitions -------------------------------------------------------------------------


async def move(
    session: AsyncSession,
    dispatch_id: str,
    from_states: tuple[str, ...],
    to_state: str,
    *,
    now: datetime,
    actor: str | None = None,
    note: str | None = None,
    **values: Any,
) -> Dispatch | None:
    """Compare-and-set a dispatch's state; None if it is not in ``from_states`` (a race lost).

    A concurrent move to another allowed state (the delivery worker's pending → delivered as a
    department acknowledges) is not a lost race: the state is read again and the move retried.
    """
    for attempt in range(3):
        current = await session.get(Dispatch, dispatch_id, populate_existing=attempt > 0)
        if current is None or current.state not in from_states:
            return None
        from_state = current.state
        result = await session.execute(
            update(Dispatch)
            .where(Dispatch.id == dispatch_id, Dispatch.state == from_state)
            .values(state=to_state, **values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            break
    else:
        return None
    await session.refresh(current)
    case = await session.get(Case, current.case_id)
    dept = await session.get(Department, current.department_id)
    assert case is not None and dept is not None
    await log_transition(session, current, case, dept, from_state, at=now, actor=actor, note=note)
    return current


TRANSITION_DISPATCH = (
    "id",
    "department_id",
    "state",
    "feedback_result",
    "rule_id",
    "rule_version",
    "matched_prefix",
    "reason",
    "escalated_from",
    "rerouted_from",
)
TRANSITION_CASE = ("id", "source_event_id", "source_event_type", "source_subject", "grid_code")


async def mark_delivered(
    session: AsyncSession, delivery_ids: list[str], *, now: datetime, actor: str
) -> int:
    """pending → delivered for the dispatches of these deliveries that have succeeded, all at
    once (compare-and-set on the state, as :func:`move`), with their log rows and notify.v1
    events; returns how many moved. Every one of them gets its ``delivered_at``."""
    if not delivery_ids:
        return 0
    succeeded = (
        select(Delivery.dispatch_id)
        .where(Delivery.id.in_(delivery_ids), Delivery.state == "succeeded")
        .scalar_subquery()
    )
    moved = list(
        (
            await session.scalars(
                update(Dispatch)
                .where(Dispatch.id.in_(succeeded), Dispatch.state == "pending")
                .values(state="delivered", delivered_at=now)
                .returning(Dispatch.id)
                .execution_options(synchronize_session=False)
            )
        ).all()
    )
    # A department's system may acknowledge the moment it has the webhook, before the 200 is
    # recorded here: that dispatch has moved on from pending, but it was delivered all the same.
    await session.execute(
        update(Dispatch)
        .where(Dispatch.id.in_(succeeded), Dispatch.delivered_at.is_(None))
        .values(delivered_at=now)
        .execution_options(synchronize_session=False)
    )
    if not moved:
        return 0
    # Only the columns a transition names (a case's event body is large and not needed).
    rows = await session.execute(
        select(
            *(getattr(Dispatch, c) for c in TRANSITION_DISPATCH),
            *(getattr(Case, c).label(f"case_{c}") for c in TRANSITION_CASE),
            Department.name.label("dept_name"),
            Department.type.label("dept_type"),
        )
        .join(Case, Case.id == Dispatch.case_id)
        .join(Department, Department.id == Dispatch.department_id)
        .where(Dispatch.id.in_(moved))
        .order_by(Dispatch.id)
    )
    logs, events = [], []
    for r in rows.mappings():
        d = Row(**{c: r[c] for c in TRANSITION_DISPATCH})
        case = Row(**{c: r[f"case_{c}"] for c in TRANSITION_CASE})
        dept = Row(id=r["department_id"], name=r["dept_name"], type=r["dept_type"])
        row, evt = transition(d, case, dept, "pending", at=now, actor=actor)  # type: ignore[arg-type]
        logs.append(row)
        events.append(evt)
    await session.execute(insert(DispatchLog.__table__), logs)
    await record_many(session, notify_tables, events)
    return len(moved)


async def load_for_department(
    session: AsyncSession, dispatch_id: str, principal: Principal
) -> Dispatch:
    """A dispatch the caller may act on: their own department's, or, for an admin, one whose
    grid lies inside the admin's scopes. Any other answers 404, like an unknown id."""
    d = await session.get(Dispatch, dispatch_id)
    if d is None:
        raise not_found("dispatch", dispatch_id)
    if principal.department_id == d.department_id:
        return d
    if principal.has_role("admin"):
        case = await session.get(Case, d.case_id)
        if case is not None and principal.covers(case.grid_code):
            return d
    raise not_found("dispatch", dispatch_id)


async def acknowledge(session: AsyncSession, d: Dispatch, actor: str, now: datetime) -> Dispatch:
    if d.state == "acknowledged":
        return d
    moved = await move(
        session,
        d.id,
        OPEN_FOR_ACK,
        "acknowledged",
        now=now,
        actor=actor,
        acknowledged_at=now,
        acknowledged_by=actor,
    )
    if moved is None:
        raise conflict(
            "dispatch-not-acknowledgeable",
            f"dispatch {d.id} is {d.state}; only pending, delivered or failed ones can be acked",
        )
    return moved


async def feedback(
    session: AsyncSession,
    d: Dispatch,
    *,
    result: str,
    note: str | None,
    photos: list[str],
    actor: str,
    calendar: WorkCalendar,
    now: datetime,
) -> Dispatch:
    if d.state not in ("acknowledged", "feedback_received"):
        raise conflict(
            "dispatch-not-open-for-feedback",
            f"dispatch {d.id} is {d.state}; acknowledge it before feeding back",
        )
    values: dict[str, Any] = dict(
        feedback_at=now,
        feedback_by=actor,
        feedback_result=result,
        feedback_note=note,
        feedback_photos=photos,
    )
    moved = await move(
        session,
        d.id,
        ("acknowledged", "feedback_received"),
        "feedback_received",
        now=now,
        actor=actor,
        note=note,
        **values,
    )
    if moved is None:
        raise conflict("dispatch-changed", f"dispatch {d.id} changed meanwhile; read it and retry")
    if result == "not_our_responsibility":
        target = await forward_to_parent(
            session,
            moved,
            kind="reroute",
            reason=note or "not our responsibility",
            calendar=calendar,
            now=now,
        )
        if target is None:
            raise Problem(
                409,
                "no-parent-department",
                f"department {moved.department_id} has no parent to re-route to; "
                "ask an administrator to route the case",
            )
        await move(
            session,
            moved.id,
            ("feedback_received",),
            "closed",
            now=now,
            actor=actor,
            note=f"re-routed to dispatch {target.id}",
            closed_at=now,
        )
        await session.refresh(moved)
    return moved


async def close(session: AsyncSession, d: Dispatch, actor: str, now: datetime) -> Dispatch:
    moved = await move(
        session, d.id, ("feedback_received",), "closed", now=now, actor=actor, closed_at=now
    )
    if moved is None:
        raise conflict(
            "dispatch-not-closable", f"dispatch {d.id} is {d.state}; only feedback_received closes"
        )
    return moved


async def forward_to_parent(
    session: AsyncSession,
    d: Dispatch,
    *,
    kind: str,
    reason: str,
    calendar: WorkCalendar,
    now: datetime,
) -> Dispatch | None:
    """New dispatch for the parent department (re-route or escalation); records the link."""
    dept = await session.get(Department, d.department_id)
    case = await session.get(Case, d.case_id)
    assert dept is not None and case is not None
    if dept.parent_id is None:
        return None
    parent = await session.get(Department, dept.parent_id)
    if parent is None or not parent.active:
        return None
    new = await create_dispatch(
        session,
        case,
        parent,
        rule_id=d.rule_id,
        rule_version=d.rule_version,
        matched_prefix=None,
        reason=f"{'re-routed' if kind == 'reroute' else 'escalated'} from {dept.name} "
        f"(dispatch {d.id}): {reason}",
        ack_sla=d.ack_sla,
        feedback_sla=d.feedback_sla,
        calendar=calendar,
        now=now,
        escalated_from=d.id if kind == "escalation" else None,
        rerouted_from=d.id if kind == "reroute" else None,
    )
    if new is None:  # the parent already has this case
        new = await session.scalar(
            select(Dispatch).where(Dispatch.case_id == case.id, Dispatch.department_id == parent.id)
        )
    await session.execute(
        update(Dispatch)
        .where(Dispatch.id == d.id)
        .values(forwarded_to=new.id if new else None, forward_reason=reason)
        .execution_options(synchronize_session=False)
    )
    return new


async def escalate(
    session: AsyncSession, dispatch_id: str, *, kind: str, calendar: WorkCalendar, now: datetime
) -> Dispatch | None:
    """Escalate one overdue dispatch exactly once (compare-and-set on its state)."""
    d = await session.get(Dispatch, dispatch_id)
    if d is None or d.escalated_at is not None:
        return None
    from_states = OPEN_FOR_ACK if kind == "ack" else ("acknowledged",)
    due = d.ack_due_at if kind == "ack" else d.feedback_due_at
    if d.state not in from_states or due > now:
        return None
    dept = await session.get(Department, d.department_id)
    has_parent = dept is not None and dept.parent_id is not None
    what = "acknowledged" if kind == "ack" else "fed back"
    note = f"not {what} within {d.ack_sla if kind == 'ack' else d.feedback_sla}"
    if not has_parent:
        # Nobody to escalate to: mark it (once) and leave the dispatch open.
        result = await session.execute(
            update(Dispatch)
            .where(Dispatch.id == d.id, Dispatch.escalated_at.is_(None), Dispatch.state == d.state)
            .values(escalated_at=now, escalation_note=f"{note}; no parent department")
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            ESCALATIONS.labels(f"{kind}_no_parent").inc()
            log.error("dispatch %s overdue (%s) and its department has no parent", d.id, note)
        return None
    moved = await move(
        session,
        d.id,
        (d.state,),
        "escalated",
        now=now,
        actor="escalation",
        note=note,
        escalated_at=now,
        escalation_note=note,
    )
    if moved is None:
        return None
    new = await forward_to_parent(
        session, moved, kind="escalation", reason=note, calendar=calendar, now=now
    )
    ESCALATIONS.labels(kind).inc()
    return new


async def overdue_ids(
    session: AsyncSession, now: datetime, limit: int = 200
) -> list[tuple[str, str]]:
    ack = await session.scalars(
        select(Dispatch.id)
        .where(
            Dispatch.state.in_(OPEN_FOR_ACK),
            Dispatch.ack_due_at <= now,
            Dispatch.escalated_at.is_(None),
        )
        .limit(limit)
    )
    fb = await session.scalars(
        select(Dispatch.id)
        .where(
            Dispatch.state == "acknowledged",
            Dispatch.feedback_due_at <= now,
            Dispatch.escalated_at.is_(None),
        )
        .limit(limit)
    )
    return [(i, "ack") for i in ack.all()] + [(i, "feedback") for i in fb.all()]


async def case_summary(session: AsyncSession, case: Case) -> dict[str, Any]:
    rows = (
        await session.execute(
            select(Dispatch, Department)
            .join(Department, Department.id == Dispatch.department_id)
            .where(Dispatch.case_id == case.id)
            .order_by(Dispatch.created_at, Dispatch.id)
        )
    ).all()
    items = [dispatch_view(d, dept) for d, dept in rows]
    acked_states = ("acknowledged", "feedback_received", "closed")
    acknowledged = [
        {
            "department_id": i["department_id"],
            "department_name": i["department_name"],
            "at": i["acknowledged_at"],
            "by": i["acknowledged_by"],
        }
        for i in items
        if i["acknowledged_at"]
    ]
    waiting = [
        {
            "department_id": i["department_id"],
            "department_name": i["department_name"],
            "state": i["state"],
        }
        for i in items
        if i["state"] in ("pending", "delivered", "failed")
    ]
    live = [
        i
        for i in items
        if i["state"] != "escalated" and not (i["state"] == "closed" and i["forwarded_to"])
    ]
    if all(i["state"] == "closed" for i in live):
        state = "closed"
    elif all(i["state"] in ("feedback_received", "closed") for i in live):
        state = "fed_back"
    elif all(i["state"] in acked_states for i in live):
        state = "acknowledged"
    elif any(i["state"] in acked_states for i in live):
        state = "partially_acknowledged"
    else:
        state = "open"
    return {
        "id": case.id,
        "source_event_id": case.source_event_id,
        "source_event_type": case.source_event_type,
        "source_subject": case.source_subject,
        "grid_code": case.grid_code,
        "created_at": case.created_at.isoformat(),
        "state": state,
        "acknowledged": acknowledged,
        "not_acknowledged": waiting,
        "dispatches": items,
    }
