"""Escalation worker: overdue dispatches go to the parent department, exactly once.

Every replica may run it: each escalation is a compare-and-set on the dispatch's state inside
one transaction, so two workers racing for the same dispatch escalate it once.
"""

from __future__ import annotations

import asyncio
import logging

from gridgov_common.app import ServiceContext
from gridgov_common.db import utcnow

from .dispatches import escalate, overdue_ids
from .settings import Settings
from .workcal import WorkCalendar

log = logging.getLogger("gridgov.notify.escalation")


def calendar_of(settings: Settings) -> WorkCalendar:
    return WorkCalendar(settings.calendar_extra_holidays, settings.calendar_extra_workdays)


async def escalate_due(ctx: ServiceContext, calendar: WorkCalendar) -> int:
    now = utcnow()
    async with ctx.db.sessions() as session:
        due = await overdue_ids(session, now)
    count = 0
    for dispatch_id, kind in due:
        async with ctx.db.transaction() as session:
            if await escalate(session, dispatch_id, kind=kind, calendar=calendar, now=now):
                count += 1
    return count


async def escalation_worker(ctx: ServiceContext) -> None:
    settings = ctx.settings
    assert isinstance(settings, Settings)
    calendar = calendar_of(settings)
    while True:
        try:
            await escalate_due(ctx, calendar)
        except Exception as exc:
            log.warning("escalation round failed: %s", exc)
        await asyncio.sleep(settings.escalation_poll_seconds)
