"""Special groups (left-behind children, empty-nest elderly, returnees, minors under 16).

A flag is published as ``special_group.flagged`` once per person, group and grid, so the
community committee responsible for where the person lives gets a follow-up visit.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gridgov_common.app import ServiceContext
from gridgov_common.db import utcnow
from gridgov_common.events.population import SpecialGroupFlagged

from .access import china_today, mask_name
from .citizen_id import age_on
from .models import Person, SpecialGroupFlag

MINOR_AGE = 16


def special_groups(flags: Iterable[str], birth_date: date, today: date) -> list[str]:
    """The person's special groups: declared flags plus minor_under_16 from the birth date."""
    groups = sorted(set(flags))
    if age_on(birth_date, today) < MINOR_AGE:
        groups.append("minor_under_16")
    return groups


async def publish_flags(
    ctx: ServiceContext, session: AsyncSession, person: Person, grid_code: str | None
) -> list[str]:
    """Publish each of the person's groups not yet published for ``grid_code``."""
    if not grid_code:
        return []
    today = china_today()
    groups = special_groups(person.flags or [], person.birth_date, today)
    if not groups:
        return []
    done = set(
        (
            await session.scalars(
                select(SpecialGroupFlag.group).where(
                    SpecialGroupFlag.person_id == person.id,
                    SpecialGroupFlag.grid_code == grid_code,
                )
            )
        ).all()
    )
    published = []
    for group in groups:
        if group in done:
            continue
        now = utcnow()
        session.add(
            SpecialGroupFlag(person_id=person.id, group=group, grid_code=grid_code, flagged_at=now)
        )
        await ctx.publish(
            session,
            SpecialGroupFlagged(
                person_id=person.id,
                grid_code=grid_code,
                group=group,  # type: ignore[arg-type]
                masked_name=mask_name(person.name),
                age=age_on(person.birth_date, today),
                flagged_at=now,
            ),
            subject=person.id,
            gridcode=grid_code,
        )
        published.append(group)
    return published
