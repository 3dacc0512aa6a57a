"""Request and response bodies of population-svc's API (persistence models are separate)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Sex = Literal["male", "female"]
Flag = Literal["left_behind_child", "empty_nest_elderly", "returnee"]
HouseUse = Literal["residential", "collective_dormitory", "mixed"]
Reason = Literal["work", "business", "study", "family", "other"]
Purpose = Literal["household_registration", "school_place", "medical_insurance"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Page(BaseModel):
    items: list[Any]
    next_cursor: str | None = None


# --- persons ------------------------------------------------------------------------------


class PersonCreate(Strict):
    region_code: str = Field(
        pattern=r"^[0-9]{6,15}$", description="Region (scope) the record belongs to"
    )
    name: str = Field(min_length=1, max_length=100)
    id_number: str | None = Field(default=None, description="Citizen ID (18, or legacy 15)")
    passport_number: str | None = Field(default=None, max_length=20)
    nationality: str | None = Field(
        default=None, pattern=r"^[A-Z]{3}$", description="ISO 3166 alpha-3, for passports"
    )
    birth_date: date | None = None
    sex: Sex | None = None
    phone: str | None = Field(default=None, max_length=20)
    ethnicity: str | None = Field(default=None, max_length=40)
    education: str | None = Field(default=None, max_length=40)
    occupation: str | None = Field(default=None, max_length=100)
    household_region_code: str | None = Field(default=None, pattern=r"^[0-9]{6}$")
    household_address: str | None = Field(default=None, max_length=300)
    flags: list[Flag] = []

    @model_validator(mode="after")
    def _document(self) -> PersonCreate:
        if bool(self.id_number) == bool(self.passport_number):
            raise ValueError("give exactly one of id_number (citizens) or passport_number")
        if self.passport_number:
            if not self.nationality or self.nationality == "CHN":
                raise ValueError("a passport needs a foreign nationality (ISO alpha-3)")
            if self.birth_date is None or self.sex is None:
                raise ValueError("birth_date and sex are required with a passport")
        return self


class PersonUpdate(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    phone: str | None = Field(default=None, max_length=20)
    ethnicity: str | None = None
    education: str | None = None
    occupation: str | None = None
    household_region_code: str | None = Field(default=None, pattern=r"^[0-9]{6}$")
    household_address: str | None = None
    flags: list[Flag] | None = None


class DuplicateMatch(BaseModel):
    candidate_id: str
    person_id: str
    masked_name: str
    reasons: list[str]


class PersonOut(BaseModel):
    id: str
    region_code: str
    name: str
    name_pinyin: str
    sex: str
    birth_date: date
    age: int
    document_type: str
    nationality: str
    id_number: str = Field(description="Masked unless unmasked with a purpose (audited)")
    phone: str | None
    masked: bool
    ethnicity: str | None
    education: str | None
    occupation: str | None
    household_region_code: str | None
    household_address: str | None
    flags: list[str]
    special_groups: list[str]
    status: str
    merged_into: str | None
    classification: str | None = None
    active_registration_id: str | None = None


class PersonCreated(PersonOut):
    duplicate_candidates: list[DuplicateMatch] = []


class PersonSearch(Strict):
    id_number: str | None = None
    name: str | None = None
    birth_date: date | None = None
    phone: str | None = None
    household_region_code: str | None = Field(default=None, pattern=r"^[0-9]{6}$")
    region_code: str | None = None
    limit: int = Field(default=20, ge=1, le=100)


class AuditOut(BaseModel):
    id: str
    at: datetime
    actor: str
    roles: list[str]
    action: str
    entity_type: str
    entity_id: str
    fields: list[str]
    purpose: str | None
    request_id: str | None


# --- houses -------------------------------------------------------------------------------


class RoomIn(Strict):
    number: str = Field(min_length=1, max_length=20)
    area_m2: float = Field(gt=0, le=100000)


class RoomOut(BaseModel):
    id: str
    number: str
    area_m2: float
    occupants: int = 0


class HouseCreate(Strict):
    community_code: str = Field(pattern=r"^[0-9]{12}$")
    address: str = Field(min_length=1, max_length=300)
    lon: float
    lat: float
    crs: Literal["wgs84", "gcj02", "bd09"] = "wgs84"
    owner_name: str = Field(min_length=1, max_length=100)
    owner_id_number: str | None = None
    owner_phone: str | None = Field(default=None, max_length=20)
    floor_area_m2: float = Field(gt=0, le=1_000_000)
    floor: int | None = Field(default=None, ge=-10, le=300)
    layout: str | None = Field(default=None, max_length=60)
    use: HouseUse
    rental_status: Literal["rented", "vacant", "self_occupied"] = "rented"
    rooms: list[RoomIn] = []


class HouseUpdate(Strict):
    floor_area_m2: float | None = Field(default=None, gt=0)
    use: HouseUse | None = None
    rental_status: Literal["rented", "vacant", "self_occupied"] | None = None
    rooms: list[RoomIn] | None = Field(
        default=None, description="Rooms to add or resize (matched by number)"
    )


class HouseOut(BaseModel):
    id: str
    house_code: str
    community_code: str
    grid_code: str
    address: str
    location: tuple[float, float]
    owner_name: str
    owner_id_number: str | None
    owner_phone: str | None
    floor_area_m2: float
    floor: int | None
    layout: str | None
    use: str
    rental_status: str
    status: str
    rooms: list[RoomOut]
    occupants: int
    overcrowded_units: list[str] = []


# --- registrations ------------------------------------------------------------------------


class RegistrationCreate(Strict):
    person_id: str
    house_id: str
    room_number: str | None = None
    arrival_date: date
    reason: Reason
    id_number: str | None = Field(
        default=None,
        description="The person's whole document number: lets the registrar of the new place "
        "take over a person recorded under another region (handover on moving)",
    )


class Departure(Strict):
    departure_date: date


class RegistrationOut(BaseModel):
    id: str
    person_id: str
    house_id: str
    room_id: str | None
    grid_code: str
    arrival_date: date
    departure_date: date | None
    reason: str
    classification: str
    active: bool
    closed_registration_id: str | None = None


class OutflowCreate(Strict):
    person_id: str
    community_code: str = Field(pattern=r"^[0-9]{12}$")
    destination: str = Field(min_length=1, max_length=300)
    left_on: date | None = None


class OutflowOut(BaseModel):
    id: str
    person_id: str
    community_code: str
    destination: str
    left_on: date | None
    returned_on: date | None


# --- duplicates ---------------------------------------------------------------------------


class DuplicateDecision(Strict):
    decision: Literal["duplicate", "not_duplicate"]
    survivor_id: str | None = Field(default=None, description="Required for 'duplicate'")
    purpose: str = Field(min_length=2, max_length=500, description="Why (audited)")


class DuplicateOut(BaseModel):
    id: str
    person_a: str
    person_b: str
    reasons: list[str]
    status: str
    survivor_id: str | None
    decided_by: str | None
    decided_at: datetime | None


# --- permits ------------------------------------------------------------------------------


class Evidence(Strict):
    kind: Literal["employment", "housing", "study"]
    description: str = Field(min_length=1, max_length=300)
    reference: str | None = Field(default=None, max_length=200)


class PermitApply(Strict):
    person_id: str
    evidence: list[Evidence] = Field(min_length=1)
    photo_ref: str | None = Field(default=None, max_length=300)
    issuing_authority: str = Field(min_length=1, max_length=200)
    issue_date: date | None = Field(
        default=None, description="For permits issued on paper and entered later; default today"
    )


class Endorse(Strict):
    on: date | None = Field(default=None, description="Endorsement date; default today")


class PermitOut(BaseModel):
    id: str
    permit_number: str
    person_id: str
    grid_code: str
    name: str
    sex: str
    ethnicity: str | None
    birth_date: date
    id_number: str
    photo_ref: str | None
    household_address: str | None
    residence_address: str
    issuing_authority: str
    issue_date: date
    valid_until: date
    endorsement_window_opens: date
    status: str
    evidence: list[dict[str, Any]]
    endorsements: list[str]


# --- employers ----------------------------------------------------------------------------


class EmployerCreate(Strict):
    region_code: str = Field(pattern=r"^[0-9]{6,15}$")
    name: str = Field(min_length=1, max_length=200)
    credit_code: str | None = Field(default=None, pattern=r"^[0-9A-Z]{18}$")
    address: str | None = None
    agreement_signed: date | None = None
    agreement_expires: date | None = None

    @model_validator(mode="after")
    def _agreement(self) -> EmployerCreate:
        if (
            self.agreement_signed
            and self.agreement_expires
            and self.agreement_expires <= self.agreement_signed
        ):
            raise ValueError("agreement_expires must be after agreement_signed")
        return self


class EmployerOut(BaseModel):
    id: str
    region_code: str
    name: str
    credit_code: str | None
    address: str | None
    agreement_signed: date | None
    agreement_expires: date | None
    agreement_status: str


class EmploymentCreate(Strict):
    person_id: str
    start_date: date
    end_date: date | None = None

    @model_validator(mode="after")
    def _period(self) -> EmploymentCreate:
        if self.end_date and self.end_date < self.start_date:
            raise ValueError("end_date must not be before start_date")
        return self


class EmploymentOut(BaseModel):
    id: str
    employer_id: str
    person_id: str
    masked_name: str
    start_date: date
    end_date: date | None
    registered: bool


# --- staffing -----------------------------------------------------------------------------


class GridStaffing(BaseModel):
    grid_code: str
    floating_residents: int
    coordinators: int
    residents_per_coordinator: float | None
    required_coordinators: int
    understaffed: bool


class StaffingOut(BaseModel):
    norm: int
    grids: list[GridStaffing]
    understaffed: list[str]


# --- points -------------------------------------------------------------------------------


class ScoringItem(Strict):
    code: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    category: str = Field(min_length=1, max_length=40)
    label: str = Field(min_length=1, max_length=100)
    kind: Literal["choice", "per_unit"]
    choices: dict[str, float] | None = None
    points_per_unit: float | None = None
    cap: float | None = Field(default=None, description="Bound on |points| of the line")

    @model_validator(mode="after")
    def _shape(self) -> ScoringItem:
        if self.kind == "choice" and not self.choices:
            raise ValueError("a choice item needs choices")
        if self.kind == "per_unit" and self.points_per_unit is None:
            raise ValueError("a per_unit item needs points_per_unit")
        return self


class ScoringTableIn(Strict):
    version: str = Field(pattern=r"^[A-Za-z0-9._-]{1,40}$")
    items: list[ScoringItem] = Field(min_length=1)
    tie_break: list[str] = Field(
        default=["score_desc", "residence_years_desc", "submitted_at_asc", "id_asc"],
        description="Published tie-break rule, applied in order",
    )


class ScoringTableOut(BaseModel):
    version: str
    items: list[dict[str, Any]]
    tie_break: list[str]
    published_at: datetime


class QuotaIn(Strict):
    year: int = Field(ge=2000, le=2100)
    town_code: str = Field(pattern=r"^[0-9]{9}$")
    purpose: Purpose
    quota: int = Field(ge=0, le=10_000_000)


class PointsApply(Strict):
    person_id: str
    year: int = Field(ge=2000, le=2100)
    town_code: str = Field(pattern=r"^[0-9]{9}$")
    purpose: Purpose
    table_version: str
    facts: dict[str, Any] = Field(
        default={}, description="Item code -> choice value or number of units"
    )


class PointsOut(BaseModel):
    id: str
    person_id: str
    year: int
    town_code: str
    purpose: str
    table_version: str
    facts: dict[str, Any]
    lines: list[dict[str, Any]]
    score: float
    submitted_at: datetime


class RankingEntry(BaseModel):
    rank: int
    application_id: str
    person_id: str
    masked_name: str
    score: float
    within_quota: bool


class RankingOut(BaseModel):
    year: int
    town_code: str
    purpose: str
    quota: int
    tie_break: list[str]
    entries: list[RankingEntry]
