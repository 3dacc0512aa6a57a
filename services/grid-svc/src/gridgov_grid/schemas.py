"""Request and response bodies of grid-svc's API."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Level = Literal["district", "street", "community", "grid"]
GridClass = Literal["enhanced", "key", "regular"]
Crs = Literal["wgs84", "gcj02", "bd09"]
MemberRole = Literal["leader", "street_cadre", "committee_member", "police_officer", "coordinator"]
RegionKind = Literal["subdistrict", "town", "township", "residents_committee", "village"]

CODE_PATTERN = r"^\d{6}(\d{3}){0,3}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegionCreate(Strict):
    code: str | None = Field(
        default=None,
        pattern=CODE_PATTERN,
        description="Omit to have the next free code under the parent allocated",
        examples=["440306001"],
    )
    level: Level
    parent_code: str | None = Field(default=None, pattern=CODE_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    kind: RegionKind | None = Field(
        default=None,
        description="street: subdistrict/town/township; community: "
        "residents_committee/village (narrows the code range)",
    )
    grid_class: GridClass | None = Field(default=None, description="grids only; default regular")
    households: int | None = Field(default=None, ge=0, le=10_000_000)
    residents: int | None = Field(default=None, ge=0, le=100_000_000)
    boundary: dict[str, Any] | None = Field(
        default=None, description="GeoJSON Polygon or MultiPolygon, WGS-84"
    )

    @model_validator(mode="after")
    def _grid_fields(self) -> RegionCreate:
        if self.level != "grid" and self.grid_class is not None:
            raise ValueError("grid_class applies to grids only")
        return self


class RegionUpdate(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    grid_class: GridClass | None = None
    households: int | None = Field(default=None, ge=0, le=10_000_000)
    residents: int | None = Field(default=None, ge=0, le=100_000_000)
    boundary: dict[str, Any] | None = None


class RegionRetire(Strict):
    replaced_by: list[str] = Field(default_factory=list, max_length=100)
    reason: str = Field(default="", max_length=500)


class RegionCreatePart(Strict):
    name: str = Field(min_length=1, max_length=200)
    boundary: dict[str, Any]
    grid_class: GridClass | None = None


class GridSplit(Strict):
    """Retire a grid and create its successors in one step (codes allocated)."""

    parts: list[RegionCreatePart] = Field(min_length=2, max_length=20)


class RegionRef(BaseModel):
    code: str
    name: str
    level: Level


class RegionOut(BaseModel):
    code: str
    level: Level
    kind: str | None = None
    name: str
    parent_code: str | None
    status: Literal["active", "retired"]
    grid_class: GridClass | None = None
    households: int | None = None
    residents: int | None = None
    boundary: dict[str, Any] | None = None
    ancestors: list[RegionRef]
    replaced_by: list[str] = []
    version: int


class RegionPage(BaseModel):
    items: list[RegionOut]
    next_cursor: str | None


class LocatedGrid(BaseModel):
    code: str
    name: str
    level: Literal["grid"] = "grid"
    grid_class: GridClass | None


class LocateQuery(BaseModel):
    """Query of ``GET /v1/locate``."""

    lon: float
    lat: float
    crs: Crs = "wgs84"


class LocateOut(BaseModel):
    point: tuple[float, float] = Field(description="the point in WGS-84 [lon, lat]")
    grid: LocatedGrid
    ancestors: list[RegionRef]


class BatchLocateIn(Strict):
    points: list[tuple[float, float]] = Field(
        min_length=1, description="[lon, lat] pairs; at most max_batch_points (10,000)"
    )
    crs: Crs = "wgs84"


class BatchLocateItem(BaseModel):
    point: tuple[float, float]
    grid: LocatedGrid | None
    ancestors: list[RegionRef]


class BatchLocateOut(BaseModel):
    results: list[BatchLocateItem]
    outside: int


class MemberCreate(Strict):
    name: str = Field(min_length=1, max_length=100)
    role: MemberRole
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9\- ]{5,20}$")
    email: str | None = Field(default=None, max_length=200, pattern=r"^[^@\s]+@[^@\s]+$")
    valid_from: date
    valid_to: date | None = None
    replaces: str | None = Field(
        default=None, description="member id whose assignment ends now (leader hand-over)"
    )

    @model_validator(mode="after")
    def _period(self) -> MemberCreate:
        if self.valid_to is not None and self.valid_to < self.valid_from:
            raise ValueError("valid_to is before valid_from")
        return self


class MemberOut(BaseModel):
    id: str
    grid_code: str
    name: str
    role: MemberRole
    phone: str | None
    email: str | None
    valid_from: date
    valid_to: date | None
    active: bool


class LeaderGap(BaseModel):
    code: str
    name: str
    community_code: str | None
