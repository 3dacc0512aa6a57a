"""notify-svc: departments, routing, dispatches, delivery, acknowledgement, escalation."""

from __future__ import annotations

from gridgov_common.app import ServiceDefinition, create_app
from gridgov_common.events import NOTIFY_TOPIC

from .api import router
from .consumers import HANDLERS
from .models import Base, tables
from .settings import Settings


def definition(settings: Settings | None = None) -> ServiceDefinition:
    return ServiceDefinition(
        settings=settings or Settings(),
        metadata=Base.metadata,
        tables=tables,
        routers=[router],
        title="gridgov notify-svc",
        description=__doc__ or "",
        produces=[NOTIFY_TOPIC],
        handlers=HANDLERS,
    )


app = create_app(definition())
