"""notify-svc: departments, routing, dispatches, delivery, acknowledgement, escalation."""

from __future__ import annotations

from gridgov_common.app import ServiceContext, ServiceDefinition, create_app
from gridgov_common.events import NOTIFY_TOPIC

from .api import router
from .consumers import build_handlers
from .delivery import delivery_worker
from .dispatches import NEW_DELIVERIES
from .escalation import calendar_of, escalation_worker
from .models import Base, tables
from .rules import seed_defaults
from .settings import Settings


async def seed_rules(ctx: ServiceContext) -> None:
    await seed_defaults(ctx.db)


async def wake_delivery_on_commit(ctx: ServiceContext) -> None:
    """A committed dispatch goes to this replica's delivery worker at once (no poll delay)."""

    def hook(session: object) -> None:
        # Database.on_commit hooks run on the outermost commit only.
        new = session.info.pop(NEW_DELIVERIES, None)  # type: ignore[attr-defined]
        worker = ctx.state.get("delivery_worker")
        if new and worker is not None:
            worker.handoff(new)

    ctx.db.on_commit(hook)


def definition(settings: Settings | None = None) -> ServiceDefinition:
    settings = settings or Settings()
    return ServiceDefinition(
        settings=settings,
        metadata=Base.metadata,
        tables=tables,
        routers=[router],
        title="gridgov notify-svc",
        description=__doc__ or "",
        produces=[NOTIFY_TOPIC],
        handlers=build_handlers(calendar_of(settings)),
        workers=[delivery_worker, escalation_worker],
        on_startup=[seed_rules, wake_delivery_on_commit],
    )


app = create_app(definition())
