"""Request and response bodies of grid-svc's API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Level = Literal["district", "street", "community", "grid"]


class RegionCreate(BaseModel):
    code: str = Field(pattern=r"^\d{6}(\d{3}){0,3}$", examples=["440306001"])
    name: str = Field(min_length=1, max_length=200)
    parent_code: str | None = None


class RegionOut(BaseModel):
    code: str
    level: Level
    name: str
    parent_code: str | None
    status: str
    version: int
