"""Payloads on ``notify.v1`` (published by notify-svc, keyed by grid code).

One dispatch exists per (source event, department); a case groups the dispatches of one source
event (joint handling). Every dispatch transition is published as ``dispatch.state_changed``,
so inspection-svc and population-svc can follow the handling of what they reported.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from .envelope import NOTIFY_TOPIC, EventPayload, event

DispatchState = Literal[
    "pending", "delivered", "acknowledged", "feedback_received", "closed", "escalated", "failed"
]
FeedbackResult = Literal["rectified", "in_progress", "not_our_responsibility", "cannot_locate"]


@event("notify.dispatch.state_changed", NOTIFY_TOPIC)
class DispatchStateChanged(EventPayload):
    dispatch_id: str
    case_id: str
    source_event_id: str
    source_event_type: str
    source_subject: str | None  # e.g. the hazard id
    grid_code: str | None
    department_id: str
    department_name: str
    department_type: str
    from_state: DispatchState | None
    to_state: DispatchState
    at: datetime
    actor: str | None = None
    feedback_result: FeedbackResult | None = None
    note: str | None = None


@event("notify.event.unrouted", NOTIFY_TOPIC)
class EventUnrouted(EventPayload):
    """An event matched no department: reported, never dropped silently."""

    source_event_id: str
    source_event_type: str
    grid_code: str | None
    reason: str
    at: datetime
