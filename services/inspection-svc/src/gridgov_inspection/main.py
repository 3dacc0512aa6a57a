"""inspection-svc: venues, tagged checkpoints, inspections, hazards, green/yellow/red."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from gridgov_common.app import ServiceContext, ServiceDefinition, create_app
from gridgov_common.events import INSPECTION_TOPIC

from . import catalogue
from .api import router
from .consumers import make_handlers
from .models import Base, tables
from .photos import PhotoStore
from .settings import Settings
from .status import sweeper


async def _startup(ctx: ServiceContext) -> None:
    ctx.state["photos"] = PhotoStore(ctx.settings.photo_dir)  # type: ignore[attr-defined]
    try:
        async with ctx.db.transaction() as session:
            await catalogue.seed(session)
    except IntegrityError:
        pass  # another replica seeded at the same moment


def definition(settings: Settings | None = None) -> ServiceDefinition:
    settings = settings or Settings()
    return ServiceDefinition(
        settings=settings,
        metadata=Base.metadata,
        tables=tables,
        routers=[router],
        title="gridgov inspection-svc",
        description=__doc__ or "",
        produces=[INSPECTION_TOPIC],
        handlers=make_handlers(settings),
        workers=[sweeper],
        on_startup=[_startup],
    )


app = create_app(definition())
