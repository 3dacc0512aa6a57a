"""grid-svc: the grid hierarchy, geometry, codes, grid members and point→grid lookup."""

from __future__ import annotations

from gridgov_common.app import ServiceDefinition, create_app
from gridgov_common.events import GRID_TOPIC

from .api import router
from .index_sync import follow_grid_topic, load_directory
from .models import Base, tables
from .settings import Settings


def definition(settings: Settings | None = None) -> ServiceDefinition:
    return ServiceDefinition(
        settings=settings or Settings(),
        metadata=Base.metadata,
        tables=tables,
        routers=[router],
        title="gridgov grid-svc",
        description=__doc__ or "",
        produces=[GRID_TOPIC],
        on_startup=[load_directory],
        workers=[follow_grid_topic],
    )


app = create_app(definition())
