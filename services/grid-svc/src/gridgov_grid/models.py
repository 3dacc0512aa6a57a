"""Persistence models of grid-svc (separate from the API schemas in ``schemas.py``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from gridgov_common.db import Geometry, UTCDateTime, gist_index, service_base, utcnow

Base, tables = service_base()


class Region(Base):
    """A district, street, community or grid; the code encodes its place in the hierarchy."""

    __tablename__ = "regions"
    __table_args__ = (gist_index("ix_regions_boundary", "boundary"),)

    code: Mapped[str] = mapped_column(String(15), primary_key=True)
    level: Mapped[str] = mapped_column(String(10), index=True)
    name: Mapped[str] = mapped_column(String(200))
    parent_code: Mapped[str | None] = mapped_column(
        String(15), ForeignKey("regions.code"), index=True
    )
    status: Mapped[str] = mapped_column(String(10), default="active")
    grid_class: Mapped[str | None] = mapped_column(String(10))
    households: Mapped[int | None] = mapped_column(Integer)
    residents: Mapped[int | None] = mapped_column(Integer)
    boundary: Mapped[object | None] = mapped_column(Geometry("GEOMETRY"))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
