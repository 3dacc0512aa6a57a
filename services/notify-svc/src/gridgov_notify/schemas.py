"""Request and response schemas of notify-svc's API (persistence models are not API schemas)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, HttpUrl

DepartmentType = Literal[
    "police_station",
    "fire_brigade",
    "community_committee",
    "flow_station",
    "market_regulation",
    "housing",
    "health",
    "education",
    "social_security",
    "other",
]


class WebhookIn(BaseModel):
    url: HttpUrl
    secret: str = Field(description="whsec_<base64 of 24-64 random bytes>; never returned")


class DepartmentIn(BaseModel):
    id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    name: str = Field(min_length=1, max_length=200)
    type: DepartmentType
    jurisdictions: list[str] = Field(min_length=1)
    parent_id: str | None = None
    webhook: WebhookIn | None = None
    sse_enabled: bool = True


class DepartmentPatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    type: DepartmentType | None = None
    jurisdictions: list[str] | None = None
    parent_id: str | None = None
    webhook_url: HttpUrl | None = None
    remove_webhook: bool = False
    sse_enabled: bool | None = None
    active: bool | None = None


class SecretIn(BaseModel):
    secret: str


class SecretOut(BaseModel):
    id: str
    created_at: str
    fingerprint: str


class WebhookOut(BaseModel):
    url: str
    secrets: list[SecretOut]


class DepartmentOut(BaseModel):
    id: str
    name: str
    type: str
    jurisdictions: list[str]
    parent_id: str | None
    webhook: WebhookOut | None
    sse_enabled: bool
    active: bool
    version: int
    created_at: datetime


class RuleIn(BaseModel):
    rule_id: str | None = Field(default=None, pattern=r"^[a-z0-9-]{1,64}$")
    name: str = Field(min_length=1, max_length=200)
    event_type: str
    match: dict[str, list[str]] = {}
    grid_classes: list[str] | None = None
    department_types: list[DepartmentType] = Field(min_length=1)
    ack_sla: str = Field(examples=["15m", "4h", "3wd"])
    feedback_sla: str = Field(examples=["1wd", "3wd"])
    active: bool = True


class RuleOut(BaseModel):
    rule_id: str
    version: int
    name: str
    event_type: str
    match: dict[str, list[str]]
    grid_classes: list[str] | None
    department_types: list[str]
    ack_sla: str
    feedback_sla: str
    active: bool
    is_current: bool
    created_at: datetime
    created_by: str


class FeedbackIn(BaseModel):
    result: Literal["rectified", "in_progress", "not_our_responsibility", "cannot_locate"]
    note: str | None = Field(default=None, max_length=4000)
    photos: list[str] = Field(
        default=[], max_length=20, description="photo references (hashes/URLs)"
    )


class Page(BaseModel):
    items: list[Any]
    next_cursor: str | None
