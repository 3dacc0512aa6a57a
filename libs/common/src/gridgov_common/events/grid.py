"""Payloads on ``grid.v1`` (published by grid-svc, keyed by region code).

Region events carry the full new state, geometry and ancestor chain included, so a consumer
can keep its own read model of the hierarchy without calling grid-svc back.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel

from .envelope import GRID_TOPIC, EventPayload, event

RegionLevel = Literal["district", "street", "community", "grid"]
GridClass = Literal["enhanced", "key", "regular"]
MemberRole = Literal["leader", "street_cadre", "committee_member", "police_officer", "coordinator"]


class RegionRef(BaseModel):
    code: str
    name: str
    level: RegionLevel


class RegionState(EventPayload):
    code: str
    level: RegionLevel
    name: str
    parent_code: str | None
    ancestors: list[RegionRef]
    status: Literal["active", "retired"]
    grid_class: GridClass | None = None
    households: int | None = None
    residents: int | None = None
    geometry: dict[str, Any] | None = None
    version: int


@event("grid.region.created", GRID_TOPIC)
class RegionCreated(RegionState):
    pass


@event("grid.region.updated", GRID_TOPIC)
class RegionUpdated(RegionState):
    changed: list[str] = []


@event("grid.region.retired", GRID_TOPIC)
class RegionRetired(RegionState):
    replaced_by: list[str] = []


class MemberState(EventPayload):
    member_id: str
    grid_code: str
    name: str
    role: MemberRole
    valid_from: date
    valid_to: date | None = None


@event("grid.member.assigned", GRID_TOPIC)
class MemberAssigned(MemberState):
    pass


@event("grid.member.removed", GRID_TOPIC)
class MemberRemoved(MemberState):
    pass
