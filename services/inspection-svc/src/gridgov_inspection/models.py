"""Persistence models of inspection-svc (not API schemas: see schemas.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from gridgov_common.db import BigId, Geometry, PlatformTables, UTCDateTime, utcnow


class Base(DeclarativeBase):
    """Declarative base of inspection-svc's tables."""

    # Every mapping here is a Table: typed so, for the Core statements built on them.
    __table__: ClassVar[Table]


tables = PlatformTables(Base.metadata)


class GridRegion(Base):
    """Read model of grid-svc's hierarchy, built from ``grid.v1`` (and seeded by locate)."""

    __tablename__ = "grid_regions"

    code: Mapped[str] = mapped_column(String(15), primary_key=True)
    level: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(200))
    parent_code: Mapped[str | None] = mapped_column(String(15))
    status: Mapped[str] = mapped_column(String(10), default="active")
    grid_class: Mapped[str | None] = mapped_column(String(10))
    version: Mapped[int] = mapped_column(Integer, default=0)
    # Grids only: the boundary, so venues can follow boundary changes, splits and retirements.
    geometry: Mapped[Any] = mapped_column(Geometry("GEOMETRY"), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class VenueType(Base):
    """The maintained list of venue types (the "nine small places", extensible)."""

    __tablename__ = "venue_types"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CheckTemplate(Base):
    """One version of the check items for a venue type; a new edit is a new row."""

    __tablename__ = "check_templates"

    venue_type: Mapped[str] = mapped_column(ForeignKey("venue_types.code"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    requires_photo: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    note: Mapped[str | None] = mapped_column(Text)


class Venue(Base):
    __tablename__ = "venues"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    venue_type: Mapped[str] = mapped_column(ForeignKey("venue_types.code"))
    address: Mapped[str] = mapped_column(String(500))
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    location: Mapped[Any] = mapped_column(Geometry("POINT"))
    floor_area_m2: Mapped[float | None] = mapped_column(Float)
    operator_name: Mapped[str | None] = mapped_column(String(200))
    contact_phone: Mapped[str | None] = mapped_column(String(40))
    licence_no: Mapped[str | None] = mapped_column(String(64))
    grid_code: Mapped[str] = mapped_column(String(15), index=True)
    community_code: Mapped[str | None] = mapped_column(String(15))
    street_code: Mapped[str | None] = mapped_column(String(15))
    grid_class: Mapped[str | None] = mapped_column(String(10))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)


class Checkpoint(Base):
    """A tagged point of a venue, with its items, cycle and the state that drives its colour.

    ``due_at`` (last inspection or creation + effective cycle) and ``open_hazards`` are kept
    up to date on every write, so the colour of any number of checkpoints is one set-based
    expression (see status.py) rather than a per-row computation.
    """

    __tablename__ = "checkpoints"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    venue_id: Mapped[str] = mapped_column(ForeignKey("venues.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    tag_uid: Mapped[str] = mapped_column(String(32), unique=True)
    # NTAG 424 DNA SDM file-read key, AES-GCM encrypted (nonce || ciphertext); never returned.
    tag_key_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    sun_counter: Mapped[int | None] = mapped_column(Integer)
    item_codes: Mapped[list[str] | None] = mapped_column(JSON)
    base_cycle_days: Mapped[int] = mapped_column(Integer)
    effective_cycle_days: Mapped[int] = mapped_column(Integer)
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    venue_type: Mapped[str] = mapped_column(String(40))
    grid_code: Mapped[str] = mapped_column(String(15))
    community_code: Mapped[str | None] = mapped_column(String(15))
    street_code: Mapped[str | None] = mapped_column(String(15))
    assigned_inspector: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_inspected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    missed_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    open_hazards: Mapped[int] = mapped_column(Integer, default=0)
    colour: Mapped[str] = mapped_column(String(6), default="green")

    __table_args__ = (
        Index("ix_checkpoints_grid", "grid_code"),
        Index("ix_checkpoints_due", "due_at"),
    )


class Inspection(Base):
    __tablename__ = "inspections"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    checkpoint_id: Mapped[str] = mapped_column(ForeignKey("checkpoints.id"), index=True)
    venue_id: Mapped[str] = mapped_column(String(36))
    grid_code: Mapped[str] = mapped_column(String(15), index=True)
    inspector: Mapped[str] = mapped_column(String(200), index=True)
    tag_uid: Mapped[str] = mapped_column(String(32))
    scanned_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sun_counter: Mapped[int | None] = mapped_column(Integer)
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    accuracy_m: Mapped[float] = mapped_column(Float)
    distance_m: Mapped[float] = mapped_column(Float)
    template_version: Mapped[int] = mapped_column(Integer)
    answers: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    passed: Mapped[bool] = mapped_column(Boolean)
    failed_items: Mapped[list[str]] = mapped_column(JSON)
    is_reinspection: Mapped[bool] = mapped_column(Boolean, default=False)
    spot_check_id: Mapped[str | None] = mapped_column(String(36))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    on_time: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class InspectionPhoto(Base):
    """A photo belongs to exactly one inspection: the unique hash rejects reuse, even racing."""

    __tablename__ = "inspection_photos"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    inspection_id: Mapped[str] = mapped_column(ForeignKey("inspections.id"), index=True)
    size: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Rejection(Base):
    """A refused submission (presence or photo rule), for the inspector's evaluation."""

    __tablename__ = "rejections"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    inspector: Mapped[str] = mapped_column(String(200), index=True)
    checkpoint_id: Mapped[str | None] = mapped_column(String(36))
    grid_code: Mapped[str | None] = mapped_column(String(15))
    kind: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Hazard(Base):
    __tablename__ = "hazards"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    checkpoint_id: Mapped[str] = mapped_column(ForeignKey("checkpoints.id"), index=True)
    venue_id: Mapped[str] = mapped_column(String(36))
    venue_type: Mapped[str] = mapped_column(String(40))
    inspection_id: Mapped[str] = mapped_column(String(36))
    grid_code: Mapped[str] = mapped_column(String(15), index=True)
    community_code: Mapped[str | None] = mapped_column(String(15))
    street_code: Mapped[str | None] = mapped_column(String(15))
    item_code: Mapped[str] = mapped_column(String(60))
    item_title: Mapped[str] = mapped_column(String(300))
    severity: Mapped[str] = mapped_column(String(10))
    description: Mapped[str] = mapped_column(Text)
    photo_hashes: Mapped[list[str]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(30), index=True)
    deadline: Mapped[datetime] = mapped_column(UTCDateTime)
    reported_by: Mapped[str] = mapped_column(String(200))
    rework_count: Mapped[int] = mapped_column(Integer, default=0)
    was_overdue: Mapped[bool] = mapped_column(Boolean, default=False)
    # confirmed: closed after a reported rectification, or a re-inspection failed it again;
    # overturned: a re-inspection passed the item before any rectification was reported.
    outcome: Mapped[str | None] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_by: Mapped[str | None] = mapped_column(String(200))


class HazardHistory(Base):
    __tablename__ = "hazard_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    hazard_id: Mapped[str] = mapped_column(ForeignKey("hazards.id"), index=True)
    from_state: Mapped[str | None] = mapped_column(String(30))
    to_state: Mapped[str] = mapped_column(String(30))
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    rework: Mapped[bool] = mapped_column(Boolean, default=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # "state": the hazard changed state; "dispatch": a department's step on it (a second
    # acknowledgement, an escalation, a failed delivery) that left its state as it was.
    kind: Mapped[str] = mapped_column(String(10), default="state", server_default="state")


class Miss(Base):
    """One missed cycle (漏检) of a checkpoint; unique per (checkpoint, due_at)."""

    __tablename__ = "misses"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    checkpoint_id: Mapped[str] = mapped_column(String(36))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    grid_code: Mapped[str] = mapped_column(String(15))
    inspector: Mapped[str | None] = mapped_column(String(200))
    run_id: Mapped[str] = mapped_column(String(36), index=True)
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("checkpoint_id", "due_at", name="uq_miss_once"),)


class SpotCheck(Base):
    """抽查: a passed inspection sampled for re-inspection by another inspector."""

    __tablename__ = "spot_checks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    inspection_id: Mapped[str] = mapped_column(ForeignKey("inspections.id"), unique=True)
    checkpoint_id: Mapped[str] = mapped_column(String(36))
    grid_code: Mapped[str] = mapped_column(String(15))
    original_inspector: Mapped[str] = mapped_column(String(200), index=True)
    assigned_inspector: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(10), default="pending")
    result_inspection_id: Mapped[str | None] = mapped_column(String(36))
    agreed: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
