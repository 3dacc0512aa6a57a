"""population-svc: floating population, rental housing, residence permits, points."""

from __future__ import annotations

from gridgov_common.app import ServiceDefinition, create_app
from gridgov_common.events import POPULATION_TOPIC

from .api import router
from .consumers import HANDLERS
from .models import Base, tables
from .permits import reminder_worker
from .settings import Settings


def definition(settings: Settings | None = None) -> ServiceDefinition:
    return ServiceDefinition(
        settings=settings or Settings(),
        metadata=Base.metadata,
        tables=tables,
        routers=[router],
        title="gridgov population-svc",
        description=__doc__ or "",
        produces=[POPULATION_TOPIC],
        handlers=HANDLERS,
        workers=[reminder_worker],
    )


app = create_app(definition())
