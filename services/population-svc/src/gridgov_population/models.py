"""Persistence models of population-svc (not API schemas: see ``schemas.py``).

Whole ID, passport and phone numbers are stored only encrypted (``*_enc``) and found through
keyed blind indexes (``*_bidx``); the masked form (``*_masked``) is kept for display so lists
never need to decrypt.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from gridgov_common.db import PlatformTables, UTCDateTime, utcnow


class Base(DeclarativeBase):
    """Declarative base of population-svc's tables."""

    # Every mapping here is a Table: typed so, for the Core statements built on them.
    __table__: ClassVar[Table]


tables = PlatformTables(Base.metadata)


def new_id() -> str:
    return uuid.uuid4().hex


class Person(Base):
    __tablename__ = "persons"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    # Data scope: the region the record belongs to (its active grid once registered).
    region_code: Mapped[str] = mapped_column(String(15), index=True)
    name: Mapped[str] = mapped_column(String(100))
    name_pinyin: Mapped[str] = mapped_column(String(200), index=True)
    sex: Mapped[str] = mapped_column(String(6))
    birth_date: Mapped[date] = mapped_column(Date, index=True)
    document_type: Mapped[str] = mapped_column(String(16))  # citizen_id | passport
    nationality: Mapped[str] = mapped_column(String(3), default="CHN")
    id_enc: Mapped[str] = mapped_column(Text)
    id_bidx: Mapped[str] = mapped_column(String(64), index=True)
    id_masked: Mapped[str] = mapped_column(String(40))
    phone_enc: Mapped[str | None] = mapped_column(Text)
    phone_bidx: Mapped[str | None] = mapped_column(String(64), index=True)
    phone_masked: Mapped[str | None] = mapped_column(String(20))
    ethnicity: Mapped[str | None] = mapped_column(String(40))
    education: Mapped[str | None] = mapped_column(String(40))
    occupation: Mapped[str | None] = mapped_column(String(100))
    household_region_code: Mapped[str | None] = mapped_column(String(6))
    household_address: Mapped[str | None] = mapped_column(String(300))
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(10), default="active")  # active | merged
    merged_into: Mapped[str | None] = mapped_column(String(32))
    # Changes whenever the facts duplicate detection looks at change.
    facts_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        Index("ix_persons_household_name_birth", "household_region_code", "birth_date"),
    )


class PersonNameKey(Base):
    """Pinyin blocking keys (with heteronym variants) for duplicate search."""

    __tablename__ = "person_name_keys"

    person_id: Mapped[str] = mapped_column(String(32), ForeignKey("persons.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    birth_date: Mapped[date] = mapped_column(Date)

    __table_args__ = (Index("ix_person_name_keys_key_birth", "key", "birth_date"),)


class AuditEntry(Base):
    """Who read or changed what, when and why (unmasked reads, merges)."""

    __tablename__ = "audit_log"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    action: Mapped[str] = mapped_column(String(40))  # unmask | merge | not_duplicate | search
    entity_type: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[str] = mapped_column(String(64), index=True)
    fields: Mapped[list[str]] = mapped_column(JSON, default=list)
    purpose: Mapped[str | None] = mapped_column(String(500))
    request_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class CodeCounter(Base):
    """Monotonic counters for allocated numbers (house codes, permit numbers): never reused."""

    __tablename__ = "code_counters"

    scope: Mapped[str] = mapped_column(String(40), primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)


class House(Base):
    __tablename__ = "houses"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    house_code: Mapped[str] = mapped_column(String(24), unique=True)
    community_code: Mapped[str] = mapped_column(String(12), index=True)
    grid_code: Mapped[str] = mapped_column(String(15), index=True)
    address: Mapped[str] = mapped_column(String(300))
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    owner_name: Mapped[str] = mapped_column(String(100))
    owner_id_enc: Mapped[str | None] = mapped_column(Text)
    owner_id_bidx: Mapped[str | None] = mapped_column(String(64), index=True)
    owner_id_masked: Mapped[str | None] = mapped_column(String(40))
    owner_phone_enc: Mapped[str | None] = mapped_column(Text)
    owner_phone_masked: Mapped[str | None] = mapped_column(String(20))
    floor_area_m2: Mapped[float] = mapped_column(Float)
    floor: Mapped[int | None] = mapped_column(Integer)
    layout: Mapped[str | None] = mapped_column(String(60))
    use: Mapped[str] = mapped_column(String(24))
    rental_status: Mapped[str] = mapped_column(String(16), default="rented")
    status: Mapped[str] = mapped_column(String(10), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Room(Base):
    __tablename__ = "rooms"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    house_id: Mapped[str] = mapped_column(String(32), ForeignKey("houses.id"), index=True)
    number: Mapped[str] = mapped_column(String(20))
    area_m2: Mapped[float] = mapped_column(Float)

    __table_args__ = (UniqueConstraint("house_id", "number", name="uq_rooms_house_number"),)


class OvercrowdingState(Base):
    """Last published overcrowding state per unit (a dormitory house or a room)."""

    __tablename__ = "overcrowding_states"

    house_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    unit: Mapped[str] = mapped_column(String(40), primary_key=True)  # "house" or room id
    overcrowded: Mapped[bool] = mapped_column(Boolean, default=False)
    occupants: Mapped[int] = mapped_column(Integer, default=0)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Registration(Base):
    """A dated period of residence (居住登记); never deleted, closed by a departure."""

    __tablename__ = "registrations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    person_id: Mapped[str] = mapped_column(String(32), ForeignKey("persons.id"), index=True)
    house_id: Mapped[str] = mapped_column(String(32), ForeignKey("houses.id"), index=True)
    room_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("rooms.id"))
    grid_code: Mapped[str] = mapped_column(String(15), index=True)
    arrival_date: Mapped[date] = mapped_column(Date)
    departure_date: Mapped[date | None] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(String(16))
    classification: Mapped[str] = mapped_column(String(8))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        # At most one active registration per person, enforced by the database too.
        Index(
            "uq_registrations_one_active",
            "person_id",
            unique=True,
            sqlite_where=text("active"),
            postgresql_where=text("active"),
        ),
    )


class OutflowReport(Base):
    """户在人不在: household registered here, living elsewhere (reported by the community)."""

    __tablename__ = "outflow_reports"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    person_id: Mapped[str] = mapped_column(String(32), ForeignKey("persons.id"), index=True)
    community_code: Mapped[str] = mapped_column(String(12), index=True)
    destination: Mapped[str] = mapped_column(String(300))
    left_on: Mapped[date | None] = mapped_column(Date)
    returned_on: Mapped[date | None] = mapped_column(Date)
    reported_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SpecialGroupFlag(Base):
    """A special-group flag published for a person in a grid (published once per grid)."""

    __tablename__ = "special_group_flags"

    person_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    group: Mapped[str] = mapped_column(String(24), primary_key=True)
    grid_code: Mapped[str] = mapped_column(String(15), primary_key=True)
    flagged_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DuplicateCandidate(Base):
    __tablename__ = "duplicate_candidates"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    # Pair stored ordered (person_a < person_b).
    person_a: Mapped[str] = mapped_column(String(32), index=True)
    person_b: Mapped[str] = mapped_column(String(32), index=True)
    region_code: Mapped[str] = mapped_column(String(15), index=True)
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open|duplicate|not_duplicate
    # facts versions of a and b when decided: a not_duplicate holds until either changes.
    decided_versions: Mapped[str | None] = mapped_column(String(40))
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    survivor_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("person_a", "person_b", name="uq_duplicate_pair"),)


class Permit(Base):
    """Residence permit (居住证) with the particulars the regulation lists, as issued."""

    __tablename__ = "permits"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    permit_number: Mapped[str] = mapped_column(String(24), unique=True)
    person_id: Mapped[str] = mapped_column(String(32), ForeignKey("persons.id"), index=True)
    grid_code: Mapped[str] = mapped_column(String(15), index=True)
    name: Mapped[str] = mapped_column(String(100))
    sex: Mapped[str] = mapped_column(String(6))
    ethnicity: Mapped[str | None] = mapped_column(String(40))
    birth_date: Mapped[date] = mapped_column(Date)
    id_enc: Mapped[str] = mapped_column(Text)
    id_masked: Mapped[str] = mapped_column(String(40))
    photo_ref: Mapped[str | None] = mapped_column(String(300))
    household_address: Mapped[str | None] = mapped_column(String(300))
    residence_address: Mapped[str] = mapped_column(String(300))
    issuing_authority: Mapped[str] = mapped_column(String(200))
    issue_date: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date] = mapped_column(Date)  # next endorsement due (anniversary)
    status: Mapped[str] = mapped_column(String(10), default="valid")  # valid|suspended
    evidence: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    endorsements: Mapped[list[str]] = mapped_column(JSON, default=list)  # ISO dates
    reminded_for: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Employer(Base):
    __tablename__ = "employers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    region_code: Mapped[str] = mapped_column(String(15), index=True)
    name: Mapped[str] = mapped_column(String(200))
    credit_code: Mapped[str | None] = mapped_column(String(18), unique=True)
    address: Mapped[str | None] = mapped_column(String(300))
    agreement_signed: Mapped[date | None] = mapped_column(Date)
    agreement_expires: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Employment(Base):
    __tablename__ = "employments"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    employer_id: Mapped[str] = mapped_column(String(32), ForeignKey("employers.id"), index=True)
    person_id: Mapped[str] = mapped_column(String(32), ForeignKey("persons.id"), index=True)
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)


class KnownGrid(Base):
    """Read model of grids from grid.v1 (for staffing)."""

    __tablename__ = "known_grids"

    code: Mapped[str] = mapped_column(String(15), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(10))
    version: Mapped[int] = mapped_column(Integer)


class Coordinator(Base):
    """Read model of grid members with role ``coordinator`` (协管员), from grid.v1."""

    __tablename__ = "coordinators"

    member_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    grid_code: Mapped[str] = mapped_column(String(15), index=True)
    name: Mapped[str] = mapped_column(String(100))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class ScoringTable(Base):
    """A published points scoring table (data, immutable once published)."""

    __tablename__ = "scoring_tables"

    version: Mapped[str] = mapped_column(String(40), primary_key=True)
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    tie_break: Mapped[list[str]] = mapped_column(JSON)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Quota(Base):
    __tablename__ = "points_quotas"

    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    town_code: Mapped[str] = mapped_column(String(9), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(24), primary_key=True)
    quota: Mapped[int] = mapped_column(Integer)


class PointsApplication(Base):
    __tablename__ = "points_applications"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    person_id: Mapped[str] = mapped_column(String(32), ForeignKey("persons.id"), index=True)
    year: Mapped[int] = mapped_column(Integer)
    town_code: Mapped[str] = mapped_column(String(9), index=True)
    purpose: Mapped[str] = mapped_column(String(24))
    table_version: Mapped[str] = mapped_column(String(40))
    facts: Mapped[dict[str, Any]] = mapped_column(JSON)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    score: Mapped[float] = mapped_column(Float)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("person_id", "year", "purpose", name="uq_points_person_year_purpose"),
    )
