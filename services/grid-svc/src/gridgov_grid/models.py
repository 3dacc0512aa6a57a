"""Persistence models of grid-svc (separate from the API schemas in ``schemas.py``)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, Table
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from gridgov_common.db import Geometry, PlatformTables, UTCDateTime, gist_index, utcnow


class Base(DeclarativeBase):
    """Declarative base of grid-svc's tables."""

    # Every mapping here is a Table: typed so, for the Core statements built on them.
    __table__: ClassVar[Table]


tables = PlatformTables(Base.metadata)


class Region(Base):
    """A district, street, community or grid; the code encodes its place in the hierarchy.

    Retired regions stay (status ``retired``) so their codes are never reused and history
    that refers to them still resolves.
    """

    __tablename__ = "regions"
    __table_args__ = (gist_index("ix_regions_boundary", "boundary"),)

    code: Mapped[str] = mapped_column(String(15), primary_key=True)
    level: Mapped[str] = mapped_column(String(10), index=True)
    kind: Mapped[str | None] = mapped_column(String(30))
    name: Mapped[str] = mapped_column(String(200))
    parent_code: Mapped[str | None] = mapped_column(
        String(15), ForeignKey("regions.code"), index=True
    )
    status: Mapped[str] = mapped_column(String(10), default="active")
    grid_class: Mapped[str | None] = mapped_column(String(10))
    households: Mapped[int | None] = mapped_column(Integer)
    residents: Mapped[int | None] = mapped_column(Integer)
    boundary: Mapped[Any | None] = mapped_column(Geometry("GEOMETRY"))
    replaced_by: Mapped[list[str]] = mapped_column(JSON, default=list)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class GridMember(Base):
    """A person assigned to a grid (网格员) with a role and a validity period."""

    __tablename__ = "grid_members"
    __table_args__ = (Index("ix_grid_members_grid_active", "grid_code", "ended_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    grid_code: Mapped[str] = mapped_column(String(15), ForeignKey("regions.code"))
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    phone: Mapped[str | None] = mapped_column(String(30))
    email: Mapped[str | None] = mapped_column(String(200))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
