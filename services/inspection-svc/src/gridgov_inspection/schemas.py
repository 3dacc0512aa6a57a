"""Request and response bodies of inspection-svc's API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Severity = Literal["general", "major"]
Crs = Literal["wgs84", "gcj02", "bd09"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Page(BaseModel):
    items: list[Any]
    next_cursor: str | None = None


class VenueTypeIn(Strict):
    code: str = Field(pattern=r"^[a-z][a-z0-9_]{1,39}$")
    name: str = Field(min_length=1, max_length=100)
    items: list[CheckItem] | None = None


class VenueTypeOut(BaseModel):
    code: str
    name: str


class CheckItem(Strict):
    code: str = Field(pattern=r"^[a-z][a-z0-9_]{1,59}$")
    title: str = Field(min_length=1, max_length=300)
    severity: Severity = "general"


class TemplateIn(Strict):
    items: list[CheckItem] = Field(min_length=1)
    requires_photo: bool = True
    note: str | None = None


class TemplateOut(BaseModel):
    venue_type: str
    version: int
    items: list[CheckItem]
    requires_photo: bool
    created_by: str
    created_at: datetime
    note: str | None = None


class VenueIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    venue_type: str
    address: str = Field(min_length=1, max_length=500)
    location: tuple[float, float] = Field(description="[lon, lat]")
    crs: Crs = "wgs84"
    floor_area_m2: float | None = Field(default=None, gt=0)
    operator_name: str | None = None
    contact_phone: str | None = None
    licence_no: str | None = None


class VenuePatch(Strict):
    name: str | None = None
    address: str | None = None
    location: tuple[float, float] | None = None
    crs: Crs = "wgs84"
    floor_area_m2: float | None = Field(default=None, gt=0)
    operator_name: str | None = None
    contact_phone: str | None = None
    licence_no: str | None = None


class VenueOut(BaseModel):
    id: str
    name: str
    venue_type: str
    address: str
    location: tuple[float, float]
    floor_area_m2: float | None
    operator_name: str | None
    contact_phone: str | None
    licence_no: str | None
    grid_code: str
    community_code: str | None
    street_code: str | None
    grid_class: str | None
    version: int


class CheckpointIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    tag_uid: str = Field(pattern=r"^[0-9A-Fa-f]{8,32}$")
    # NTAG 424 DNA SDM file-read key (AES-128, 32 hex). Stored encrypted, never returned.
    tag_key: str | None = Field(default=None, pattern=r"^[0-9A-Fa-f]{32}$")
    location: tuple[float, float] | None = Field(default=None, description="default: venue's")
    cycle_days: int | None = Field(default=None, ge=1, le=366)
    item_codes: list[str] | None = None
    assigned_inspector: str | None = None


class CheckpointPatch(Strict):
    cycle_days: int | None = Field(default=None, ge=1, le=366)
    item_codes: list[str] | None = None
    assigned_inspector: str | None = None
    active: bool | None = None


class CheckpointOut(BaseModel):
    id: str
    venue_id: str
    name: str
    tag_uid: str
    secure_tag: bool
    venue_type: str
    item_codes: list[str] | None
    base_cycle_days: int
    effective_cycle_days: int
    location: tuple[float, float]
    grid_code: str
    assigned_inspector: str | None
    active: bool
    last_inspected_at: datetime | None
    due_at: datetime
    open_hazards: int
    colour: str


class SunScan(Strict):
    uid: str
    counter: str
    cmac: str


class Answer(Strict):
    item_code: str
    result: Literal["pass", "fail", "na"]
    note: str | None = Field(default=None, max_length=2000)
    severity: Severity | None = None  # overrides the template's severity for this hazard


class InspectionIn(Strict):
    checkpoint_id: str
    tag_uid: str
    scanned_at: datetime
    position: tuple[float, float] = Field(description="device GPS [lon, lat]")
    accuracy_m: float = Field(ge=0)
    answers: list[Answer] = Field(min_length=1)
    sun: SunScan | None = None
    spot_check_id: str | None = None


class InspectionOut(BaseModel):
    id: str
    checkpoint_id: str
    venue_id: str
    grid_code: str
    inspector: str
    scanned_at: datetime
    template_version: int
    passed: bool
    failed_items: list[str]
    is_reinspection: bool
    on_time: bool
    distance_m: float
    photos: list[str]
    hazards_opened: list[str] = []
    hazards_closed: list[str] = []
    hazards_reopened: list[str] = []
    spot_check_id: str | None = None
    created_at: datetime


class HistoryOut(BaseModel):
    from_state: str | None
    to_state: str
    actor: str
    reason: str
    rework: bool
    at: datetime
    kind: Literal["state", "dispatch"] = "state"


class HazardOut(BaseModel):
    id: str
    checkpoint_id: str
    venue_id: str
    venue_type: str
    inspection_id: str
    grid_code: str
    item_code: str
    item_title: str
    severity: str
    description: str
    photo_hashes: list[str]
    state: str
    deadline: datetime
    reported_by: str
    rework_count: int
    was_overdue: bool
    outcome: str | None
    created_at: datetime
    closed_at: datetime | None
    history: list[HistoryOut] | None = None


class RectificationIn(Strict):
    note: str = Field(min_length=1, max_length=2000)


class SpotCheckSampleIn(Strict):
    since: datetime
    until: datetime
    inspectors: list[str] = Field(min_length=2, description="pool to assign re-inspections from")
    region: str | None = None
    share: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None


class SpotCheckOut(BaseModel):
    id: str
    inspection_id: str
    checkpoint_id: str
    grid_code: str
    original_inspector: str
    assigned_inspector: str
    state: str
    result_inspection_id: str | None
    agreed: bool | None
    created_at: datetime


VenueTypeIn.model_rebuild()
