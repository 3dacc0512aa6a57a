"""Routing rules as data: event type (+ payload conditions, grid class) -> department types.

Rules are versioned: an edit writes a new version and keeps the old ones, and every dispatch
records the rule id and version that created it. The defaults of the issue are seeded at start.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gridgov_common.db import Database, utcnow
from gridgov_common.errors import invalid

from .departments import DEPARTMENT_TYPES
from .models import RoutingRule
from .workcal import Sla

ROUTED_EVENT_TYPES = (
    "gridgov.inspection.hazard.reported",
    "gridgov.inspection.checkpoint.missed",
    "gridgov.population.house.overcrowded",
    "gridgov.population.special_group.flagged",
)
GRID_CLASSES = ("enhanced", "key", "regular")
FRONT_LINE = ["police_station", "fire_brigade", "community_committee"]

DEFAULT_RULES: list[dict[str, Any]] = [
    {
        "rule_id": "hazard-major",
        "name": "Major hazard: police, fire brigade and community committee of the grid",
        "event_type": "gridgov.inspection.hazard.reported",
        "match": {"severity": ["major"]},
        "department_types": FRONT_LINE,
        "ack_sla": "15m",
        "feedback_sla": "1wd",
    },
    {
        "rule_id": "hazard-general",
        "name": "General hazard: police, fire brigade and community committee of the grid",
        "event_type": "gridgov.inspection.hazard.reported",
        "match": {"severity": ["general"]},
        "department_types": FRONT_LINE,
        "ack_sla": "4h",
        "feedback_sla": "3wd",
    },
    {
        "rule_id": "checkpoint-missed",
        "name": "Missed checkpoint inspection: community committee",
        "event_type": "gridgov.inspection.checkpoint.missed",
        "match": {},
        "department_types": ["community_committee"],
        "ack_sla": "1wd",
        "feedback_sla": "3wd",
    },
    {
        "rule_id": "house-overcrowded",
        "name": "Overcrowded rental house: police, fire brigade and community committee",
        "event_type": "gridgov.population.house.overcrowded",
        "match": {},
        "department_types": FRONT_LINE,
        "ack_sla": "4h",
        "feedback_sla": "3wd",
    },
    {
        "rule_id": "special-group",
        "name": "Special group flagged: community committee visits",
        "event_type": "gridgov.population.special_group.flagged",
        "match": {},
        "department_types": ["community_committee"],
        "ack_sla": "1wd",
        "feedback_sla": "5wd",
    },
    {
        "rule_id": "special-group-children",
        "name": "Left-behind children and minors: education bureau",
        "event_type": "gridgov.population.special_group.flagged",
        "match": {"group": ["left_behind_child", "minor_under_16"]},
        "department_types": ["education"],
        "ack_sla": "1wd",
        "feedback_sla": "5wd",
    },
    {
        "rule_id": "special-group-elderly",
        "name": "Empty-nest elderly: health service",
        "event_type": "gridgov.population.special_group.flagged",
        "match": {"group": ["empty_nest_elderly"]},
        "department_types": ["health"],
        "ack_sla": "1wd",
        "feedback_sla": "5wd",
    },
]


def validate_rule(data: dict[str, Any]) -> None:
    if data["event_type"] not in ROUTED_EVENT_TYPES:
        raise invalid(
            "unknown-event-type",
            f"event_type must be one of {', '.join(ROUTED_EVENT_TYPES)}",
        )
    bad = [t for t in data["department_types"] if t not in DEPARTMENT_TYPES]
    if bad or not data["department_types"]:
        raise invalid(
            "invalid-department-types",
            f"department_types must be a non-empty list of {', '.join(DEPARTMENT_TYPES)}",
        )
    classes = data.get("grid_classes")
    if classes is not None and any(c not in GRID_CLASSES for c in classes):
        raise invalid("invalid-grid-class", f"grid_classes must be among {', '.join(GRID_CLASSES)}")
    for name in ("ack_sla", "feedback_sla"):
        try:
            Sla.parse(data[name])
        except ValueError as exc:
            raise invalid("invalid-sla", f"{name}: {exc}") from exc
    for key, values in (data.get("match") or {}).items():
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise invalid("invalid-match", f"match.{key} must be a list of strings")


def rule_matches(rule: RoutingRule, payload: dict[str, Any], grid_class: str | None) -> bool:
    if not rule.active:
        return False
    for key, allowed in (rule.match or {}).items():
        if str(payload.get(key)) not in allowed:
            return False
    return not (rule.grid_classes and grid_class not in rule.grid_classes)


async def current_rules(session: AsyncSession, event_type: str | None = None) -> list[RoutingRule]:
    q = select(RoutingRule).where(RoutingRule.is_current.is_(True))
    if event_type:
        q = q.where(RoutingRule.event_type == event_type)
    return list((await session.scalars(q.order_by(RoutingRule.rule_id))).all())


async def save_version(
    session: AsyncSession, rule_id: str, data: dict[str, Any], actor: str
) -> RoutingRule:
    """Write a new current version of ``rule_id`` (version 1 if it is new)."""
    validate_rule(data)
    latest = await session.scalar(
        select(RoutingRule)
        .where(RoutingRule.rule_id == rule_id)
        .order_by(RoutingRule.version.desc())
        .limit(1)
    )
    version = 1
    if latest is not None:
        version = latest.version + 1
        await session.execute(
            update(RoutingRule).where(RoutingRule.rule_id == rule_id).values(is_current=False)
        )
    rule = RoutingRule(
        rule_id=rule_id,
        version=version,
        name=data["name"],
        event_type=data["event_type"],
        match=data.get("match") or {},
        grid_classes=data.get("grid_classes"),
        department_types=list(data["department_types"]),
        ack_sla=data["ack_sla"],
        feedback_sla=data["feedback_sla"],
        active=data.get("active", True),
        is_current=True,
        created_at=utcnow(),
        created_by=actor,
    )
    session.add(rule)
    await session.flush()
    return rule


async def seed_defaults(db: Database) -> None:
    """Insert the default rules once (version 1); a replica racing us is fine."""
    for data in DEFAULT_RULES:
        try:
            async with db.transaction() as session:
                exists = await session.scalar(
                    select(RoutingRule.rule_id)
                    .where(RoutingRule.rule_id == data["rule_id"])
                    .limit(1)
                )
                if exists is None:
                    await save_version(session, data["rule_id"], data, "system")
        except IntegrityError:
            pass
