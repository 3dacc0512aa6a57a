"""inspection-svc: venues, tagged checkpoints, inspections, hazards, green/yellow/red."""

from __future__ import annotations

from gridgov_common.app import ServiceDefinition, create_app
from gridgov_common.events import INSPECTION_TOPIC

from .models import Base, tables
from .settings import Settings


def definition(settings: Settings | None = None) -> ServiceDefinition:
    return ServiceDefinition(
        settings=settings or Settings(),
        metadata=Base.metadata,
        tables=tables,
        routers=[],
        title="gridgov inspection-svc",
        description=__doc__ or "",
        produces=[INSPECTION_TOPIC],
    )


app = create_app(definition())
