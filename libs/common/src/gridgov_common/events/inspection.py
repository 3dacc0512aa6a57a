"""Payloads on ``inspection.v1`` (published by inspection-svc, keyed by grid code)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from .envelope import INSPECTION_TOPIC, EventPayload, event

Severity = Literal["general", "major"]
HazardState = Literal[
    "open", "dispatched", "acknowledged", "rectification_reported", "closed", "overdue"
]
CheckpointColour = Literal["green", "yellow", "red"]


class VenueRef(BaseModel):
    venue_id: str
    name: str
    venue_type: str
    address: str
    location: tuple[float, float]  # [lon, lat], WGS-84


@event("inspection.hazard.reported", INSPECTION_TOPIC)
class HazardReported(EventPayload):
    """A failed check item opened a hazard; notify-svc routes it to the departments."""

    hazard_id: str
    checkpoint_id: str
    inspection_id: str
    venue: VenueRef
    grid_code: str
    severity: Severity
    item_code: str
    item_title: str
    description: str
    deadline: datetime
    reported_by: str
    photo_hashes: list[str] = []


@event("inspection.hazard.state_changed", INSPECTION_TOPIC)
class HazardStateChanged(EventPayload):
    """Every transition of a hazard, with who, when and why."""

    hazard_id: str
    grid_code: str
    from_state: HazardState | None
    to_state: HazardState
    actor: str
    reason: str
    at: datetime
    rework: bool = False


@event("inspection.inspection.recorded", INSPECTION_TOPIC)
class InspectionRecorded(EventPayload):
    inspection_id: str
    checkpoint_id: str
    venue_id: str
    grid_code: str
    inspector: str
    passed: bool
    failed_items: list[str] = []
    is_reinspection: bool = False
    recorded_at: datetime


@event("inspection.checkpoint.missed", INSPECTION_TOPIC)
class CheckpointMissed(EventPayload):
    """A checkpoint's cycle passed with no inspection (漏检); published once per miss."""

    checkpoint_id: str
    venue: VenueRef
    grid_code: str
    due_at: datetime
    cycle_days: int
    last_inspected_at: datetime | None = None


@event("inspection.checkpoint.status_changed", INSPECTION_TOPIC)
class CheckpointStatusChanged(EventPayload):
    checkpoint_id: str
    venue_id: str
    grid_code: str
    location: tuple[float, float]
    from_colour: CheckpointColour | None
    to_colour: CheckpointColour
    at: datetime
