"""Persistence models of notify-svc (not API schemas: see schemas.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from gridgov_common.db import BigId, PlatformTables, UTCDateTime, utcnow


class Base(DeclarativeBase):
    """Declarative base of notify-svc's tables."""

    # Every mapping here is a Table: typed so, for the Core statements built on them.
    __table__: ClassVar[Table]


tables = PlatformTables(Base.metadata)


class KnownRegion(Base):
    """notify-svc's read model of the grid hierarchy, built only from ``grid.v1``."""

    __tablename__ = "known_regions"

    code: Mapped[str] = mapped_column(String(15), primary_key=True)
    level: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(200))
    parent_code: Mapped[str | None] = mapped_column(String(15))
    status: Mapped[str] = mapped_column(String(10))
    grid_class: Mapped[str | None] = mapped_column(String(10))
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Department(Base):
    """A department that receives dispatches: police station, fire brigade, committee, ..."""

    __tablename__ = "departments"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(40), index=True)
    # Region-code prefixes the department is responsible for.
    jurisdictions: Mapped[list[str]] = mapped_column(JSON)
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("departments.id"), nullable=True)
    webhook_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    # [{"id","secret","created_at"}]; at most two are valid at once (rotation). Never exposed.
    webhook_secrets: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    sse_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class RoutingRule(Base):
    """One version of a routing rule; the highest version of a rule_id is the current one."""

    __tablename__ = "routing_rules"

    rule_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    event_type: Mapped[str] = mapped_column(String(200), index=True)
    # Payload field -> accepted values, e.g. {"severity": ["major"]}; empty matches all.
    match: Mapped[dict[str, list[str]]] = mapped_column(JSON, default=dict)
    grid_classes: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    department_types: Mapped[list[str]] = mapped_column(JSON)
    ack_sla: Mapped[str] = mapped_column(String(16))
    feedback_sla: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_current: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="system")


class Case(Base):
    """One source event routed to one or more departments (joint handling)."""

    __tablename__ = "cases"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source_event_id: Mapped[str] = mapped_column(String(64), unique=True)
    source_event_type: Mapped[str] = mapped_column(String(200))
    source_subject: Mapped[str | None] = mapped_column(String(200), index=True)
    grid_code: Mapped[str | None] = mapped_column(String(15), index=True)
    event: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Dispatch(Base):
    """One sub-task of a case for one department, with its own state and SLA clocks."""

    __tablename__ = "dispatches"
    __table_args__ = (
        UniqueConstraint("case_id", "department_id", name="uq_dispatch_case_department"),
        Index("ix_dispatch_open", "state", "ack_due_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    department_id: Mapped[str] = mapped_column(ForeignKey("departments.id"), index=True)
    source_event_id: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(20))
    # Why this dispatch exists.
    rule_id: Mapped[str] = mapped_column(String(64))
    rule_version: Mapped[int] = mapped_column(Integer)
    matched_prefix: Mapped[str | None] = mapped_column(String(15), nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    ack_sla: Mapped[str] = mapped_column(String(16))
    feedback_sla: Mapped[str] = mapped_column(String(16))
    ack_due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    feedback_due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    escalated_from: Mapped[str | None] = mapped_column(String(64), nullable=True)
    rerouted_from: Mapped[str | None] = mapped_column(String(64), nullable=True)
    forwarded_to: Mapped[str | None] = mapped_column(String(64), nullable=True)
    forward_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    feedback_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    feedback_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    feedback_result: Mapped[str | None] = mapped_column(String(40), nullable=True)
    feedback_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    feedback_photos: Mapped[list[str]] = mapped_column(JSON, default=list)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    escalation_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class DispatchLog(Base):
    """Every dispatch transition, in order: the audit trail and the SSE replay source."""

    __tablename__ = "dispatch_log"

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    department_id: Mapped[str] = mapped_column(String(64), index=True)
    dispatch_id: Mapped[str] = mapped_column(String(64), index=True)
    to_state: Mapped[str] = mapped_column(String(20))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Delivery(Base):
    """One message to send on one channel; claimed by a worker with an expiring claim."""

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_delivery_due", "state", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # also the webhook-id
    dispatch_id: Mapped[str] = mapped_column(String(64), index=True)
    department_id: Mapped[str] = mapped_column(String(64), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    target: Mapped[str] = mapped_column(String(2000))
    body: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(20))  # pending, succeeded, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    first_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    claim_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class UnroutedEvent(Base):
    """An event that matched no department: kept for a human to look at."""

    __tablename__ = "unrouted_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source_event_id: Mapped[str] = mapped_column(String(64), unique=True)
    source_event_type: Mapped[str] = mapped_column(String(200))
    grid_code: Mapped[str | None] = mapped_column(String(15))
    reason: Mapped[str] = mapped_column(Text)
    event: Mapped[dict[str, Any]] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
