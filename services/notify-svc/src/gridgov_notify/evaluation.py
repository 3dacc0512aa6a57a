"""Per-department evaluation for a period: the figures a command centre publishes."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from .models import Delivery, Dispatch


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def summarise(dispatches: list[Dispatch], failed_deliveries: int) -> dict[str, Any]:
    ack_times = [
        (d.acknowledged_at - d.created_at).total_seconds() for d in dispatches if d.acknowledged_at
    ]
    fb_times = [(d.feedback_at - d.created_at).total_seconds() for d in dispatches if d.feedback_at]
    within = sum(1 for d in dispatches if d.acknowledged_at and d.acknowledged_at <= d.ack_due_at)
    received = len(dispatches)
    return {
        "received": received,
        "acknowledged": len(ack_times),
        "acknowledged_within_sla": within,
        "acknowledged_within_sla_ratio": round(within / received, 4) if received else None,
        "time_to_ack_seconds": {"median": median(ack_times), "p90": percentile(ack_times, 90)},
        "fed_back": len(fb_times),
        "fed_back_within_sla": sum(
            1 for d in dispatches if d.feedback_at and d.feedback_at <= d.feedback_due_at
        ),
        "time_to_feedback_seconds": {"median": median(fb_times), "p90": percentile(fb_times, 90)},
        "escalations": sum(1 for d in dispatches if d.state == "escalated" or d.escalated_at),
        "reroutes": sum(
            1
            for d in dispatches
            if d.forwarded_to and d.feedback_result == "not_our_responsibility"
        ),
        "failed_dispatches": sum(1 for d in dispatches if d.state == "failed"),
        "failed_deliveries": failed_deliveries,
    }


async def evaluate(
    session: AsyncSession, department_id: str, start: datetime, end: datetime
) -> dict[str, Any]:
    dispatches = list(
        (
            await session.scalars(
                select(Dispatch).where(
                    Dispatch.department_id == department_id,
                    Dispatch.created_at >= start,
                    Dispatch.created_at < end,
                )
            )
        ).all()
    )
    failed = await session.scalar(
        select(func.count())
        .select_from(Delivery)
        .where(
            Delivery.department_id == department_id,
            Delivery.state == "failed",
            Delivery.created_at >= start,
            Delivery.created_at < end,
        )
    )
    out = summarise(dispatches, int(failed or 0))
    out.update({"department_id": department_id, "from": start.isoformat(), "to": end.isoformat()})
    return out
