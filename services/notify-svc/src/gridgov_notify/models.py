"""Persistence models of notify-svc."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from gridgov_common.db import UTCDateTime, service_base, utcnow

Base, tables = service_base()


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
