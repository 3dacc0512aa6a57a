"""Shared rules of access: data scope, who may see whole numbers, the audit log, counters."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gridgov_common.auth import Principal
from gridgov_common.db import region_filter
from gridgov_common.errors import Problem, not_found
from gridgov_common.observability import request_id_var

from .citizen_id import _china_today
from .models import AuditEntry, CodeCounter

# Roles that may read population records at all (masked).
READ_ROLES = (
    "admin",
    "population_officer",
    "registrar",
    "reviewer",
    "grid_member",
    "department",
    "viewer",
    "service",
)
# Roles that may create or change records.
WRITE_ROLES = ("admin", "population_officer", "registrar")
REVIEW_ROLES = ("admin", "reviewer", "population_officer")


def china_today() -> date:
    return _china_today()


def scope_filter(principal: Principal, column: Any, requested: str | None = None) -> Any:
    """A WHERE clause restricting ``column`` to the caller's region prefixes (None: no limit)."""
    prefixes = principal.visible_prefixes(requested)
    return None if prefixes is None else region_filter(column, prefixes)


def ensure_visible(principal: Principal, region_code: str | None, what: str, ident: str) -> None:
    """Out-of-scope records answer 404, so a caller cannot probe what exists elsewhere."""
    if not principal.covers(region_code):
        raise not_found(what, ident)


def unmask_allowed(principal: Principal, unmask_roles: Iterable[str]) -> bool:
    return principal.has_role(*unmask_roles)


def check_unmask(
    principal: Principal, unmask: bool, purpose: str | None, unmask_roles: Iterable[str]
) -> bool:
    """Decide whether a read shows whole numbers; raises when asked without right or reason."""
    if not unmask:
        return False
    if not unmask_allowed(principal, unmask_roles):
        raise Problem(
            403,
            "unmask-forbidden",
            "your role may only see masked ID and phone numbers; ask a population officer",
        )
    if not purpose or len(purpose.strip()) < 2:
        raise Problem(
            422,
            "purpose-required",
            "reading whole ID or phone numbers needs a 'purpose' parameter stating why "
            "(it is written to the audit log)",
        )
    return True


def audit(
    session: AsyncSession,
    principal: Principal,
    action: str,
    entity_type: str,
    entity_id: str,
    *,
    fields: list[str] | None = None,
    purpose: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        actor=principal.subject,
        roles=sorted(principal.roles),
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        fields=fields or [],
        purpose=(purpose or "").strip() or None,
        request_id=request_id_var.get(),
        detail=detail or {},
    )
    session.add(entry)
    return entry


async def next_number(session: AsyncSession, scope: str) -> int:
    """Allocate the next number in ``scope`` (monotonic, never reused, even after deletion)."""
    counter = await session.scalar(
        select(CodeCounter).where(CodeCounter.scope == scope).with_for_update()
    )
    if counter is None:
        try:
            async with session.begin_nested():
                session.add(CodeCounter(scope=scope, last=0))
        except IntegrityError:
            pass  # another transaction created it first; lock theirs below
        counter = await session.scalar(
            select(CodeCounter).where(CodeCounter.scope == scope).with_for_update()
        )
        assert counter is not None
    counter.last += 1
    await session.flush()
    return counter.last


def mask_name(name: str) -> str:
    """张三 -> 张*, 王小明 -> 王*明, Ali Khan -> A******n."""
    if len(name) <= 1:
        return "*"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]
