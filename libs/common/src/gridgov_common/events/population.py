"""Payloads on ``population.v1`` (published by population-svc, keyed by grid code).

Events never carry a full citizen ID number or phone number.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from .envelope import POPULATION_TOPIC, EventPayload, event

SpecialGroup = Literal["left_behind_child", "empty_nest_elderly", "returnee", "minor_under_16"]


@event("population.house.overcrowded", POPULATION_TOPIC)
class HouseOvercrowded(EventPayload):
    """Floor area per registered occupant fell below the minimum (fire risk)."""

    house_id: str
    house_code: str
    grid_code: str
    address: str
    room_number: str | None = None
    use: str
    floor_area_m2: float
    occupants: int
    area_per_occupant_m2: float
    minimum_m2: float
    detected_at: datetime


@event("population.house.overcrowding_cleared", POPULATION_TOPIC)
class HouseOvercrowdingCleared(EventPayload):
    house_id: str
    house_code: str
    grid_code: str
    room_number: str | None = None
    occupants: int
    area_per_occupant_m2: float | None
    cleared_at: datetime


@event("population.residence.registered", POPULATION_TOPIC)
class ResidenceRegistered(EventPayload):
    registration_id: str
    person_id: str
    house_id: str
    grid_code: str
    arrival_date: date
    reason: str
    classification: Literal["inflow", "outflow", "local"]


@event("population.residence.ended", POPULATION_TOPIC)
class ResidenceEnded(EventPayload):
    registration_id: str
    person_id: str
    house_id: str
    grid_code: str
    departure_date: date
    moved_to_grid_code: str | None = None


@event("population.special_group.flagged", POPULATION_TOPIC)
class SpecialGroupFlagged(EventPayload):
    """A person joined a special group; routes to the community committee for a visit."""

    person_id: str
    grid_code: str
    group: SpecialGroup
    masked_name: str
    age: int | None = None
    flagged_at: datetime


@event("population.permit.expiring", POPULATION_TOPIC)
class PermitExpiring(EventPayload):
    permit_id: str
    person_id: str
    grid_code: str
    permit_number: str
    endorsement_due: date
    status: Literal["valid", "suspended", "expired"]
