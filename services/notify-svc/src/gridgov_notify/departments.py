"""Departments: types, jurisdictions, parents, channels and webhook secrets (rotation)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gridgov_common.errors import invalid, not_found

from .models import Department
from .webhooks import decode_secret

DEPARTMENT_TYPES = (
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
)
MAX_ACTIVE_SECRETS = 2


def validate_jurisdictions(prefixes: list[str]) -> list[str]:
    cleaned = []
    for p in prefixes:
        p = p.strip()
        if not p.isdigit() or not 2 <= len(p) <= 15:
            raise invalid(
                "invalid-jurisdiction",
                f"jurisdiction {p!r} must be a region-code prefix of 2-15 digits, e.g. 440306001",
            )
        cleaned.append(p)
    if not cleaned:
        raise invalid("invalid-jurisdiction", "a department needs at least one jurisdiction prefix")
    return sorted(set(cleaned))


def validate_secret(secret: str) -> None:
    try:
        key = decode_secret(secret)
    except ValueError as exc:
        raise invalid(
            "invalid-webhook-secret", f"{exc}; give 'whsec_' + base64 of 24-64 bytes"
        ) from exc
    if not 24 <= len(key) <= 64:
        raise invalid("invalid-webhook-secret", "webhook secret must hold 24 to 64 random bytes")


def fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


def add_secret(dept: Department, secret: str, now: datetime) -> dict[str, Any]:
    """Add a secret; the newest two stay valid so receivers can rotate without a gap."""
    validate_secret(secret)
    entry = {"id": uuid.uuid4().hex[:12], "secret": secret, "created_at": now.isoformat()}
    secrets = [*list(dept.webhook_secrets or []), entry]
    dept.webhook_secrets = secrets[-MAX_ACTIVE_SECRETS:]
    return entry


def remove_secret(dept: Department, secret_id: str) -> None:
    secrets = list(dept.webhook_secrets or [])
    kept = [s for s in secrets if s["id"] != secret_id]
    if len(kept) == len(secrets):
        raise not_found("webhook secret", secret_id)
    if dept.webhook_url and not kept:
        raise invalid(
            "last-webhook-secret",
            "cannot remove the only webhook secret while a webhook URL is set; add a new one first",
        )
    dept.webhook_secrets = kept


def public_secrets(dept: Department) -> list[dict[str, Any]]:
    """What the API shows about secrets: ids, dates and fingerprints, never the secret."""
    return [
        {"id": s["id"], "created_at": s["created_at"], "fingerprint": fingerprint(s["secret"])}
        for s in dept.webhook_secrets or []
    ]


def active_secrets(dept: Department) -> list[str]:
    return [s["secret"] for s in dept.webhook_secrets or []]


def matching_prefix(dept: Department, grid_code: str) -> str | None:
    """The longest jurisdiction prefix of ``dept`` covering ``grid_code``."""
    best = None
    for p in dept.jurisdictions or []:
        if grid_code.startswith(p) and (best is None or len(p) > len(best)):
            best = p
    return best


async def ensure_parent_ok(
    session: AsyncSession, dept_id: str | None, parent_id: str | None
) -> None:
    """The parent must exist and must not create a cycle."""
    seen = {dept_id} if dept_id else set()
    current = parent_id
    while current is not None:
        if current in seen:
            raise invalid("parent-cycle", f"department {parent_id} as parent would form a cycle")
        seen.add(current)
        parent = await session.get(Department, current)
        if parent is None:
            raise invalid("unknown-parent", f"parent department {current} does not exist")
        current = parent.parent_id


async def active_departments(session: AsyncSession, types: set[str]) -> list[Department]:
    rows = await session.scalars(
        select(Department).where(Department.active.is_(True), Department.type.in_(types))
    )
    return list(rows.all())
