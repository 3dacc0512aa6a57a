"""Keep every replica's in-memory directory current.

At start the directory is loaded from the database. Changes made through *this* replica are
applied right after their commit; changes made through *other* replicas arrive on ``grid.v1``,
which every replica reads with its own group-less consumer (each replica must see every event,
so they cannot share a consumer group). Versions make re-applying an event harmless.
"""

from __future__ import annotations

import asyncio
import gc
import logging

import shapely.geometry
from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError
from sqlalchemy import select

from gridgov_common.app import ServiceContext
from gridgov_common.events import GRID_TOPIC, CloudEvent
from gridgov_common.events.grid import RegionState

from .directory import Directory, RegionInfo
from .models import Region
from .regions import info_of

log = logging.getLogger("gridgov.grid.index")
REGION_EVENTS = {
    "gridgov.grid.region.created",
    "gridgov.grid.region.updated",
    "gridgov.grid.region.retired",
}


async def load_directory(ctx: ServiceContext) -> None:
    directory = Directory()
    async with ctx.db.sessions() as session:
        regions = (await session.scalars(select(Region))).all()
    directory.load([(info_of(r), r.boundary) for r in regions])
    ctx.state["directory"] = directory
    # The directory is long-lived: move it out of the collector's way, or every full
    # collection walks ~100k geometries and shows up as latency spikes.
    gc.collect()
    gc.freeze()
    log.info("directory loaded: %d regions, %d indexed grids", len(regions), len(directory.index))


async def follow_grid_topic(ctx: ServiceContext) -> None:
    """Apply region changes published by any replica (group-less, from the latest offset)."""
    backoff = 0.5
    while True:
        consumer = AIOKafkaConsumer(
            GRID_TOPIC,
            bootstrap_servers=ctx.bus.bootstrap_servers,
            group_id=None,
            auto_offset_reset="latest",
            client_id=f"{ctx.settings.service_name}-index",
        )
        try:
            await consumer.start()
            # Reload once the follower is attached, so nothing changed between the first load
            # and now is missed; versions make the overlap harmless.
            await load_directory(ctx)
            backoff = 0.5
            async for message in consumer:
                apply_message(ctx.state["directory"], message.value)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("grid.v1 follower failed, restarting in %.1fs: %s", backoff, exc)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
        finally:
            try:
                await consumer.stop()
            except Exception:
                log.debug("consumer stop failed", exc_info=True)


def apply_message(directory: Directory, value: bytes | None) -> None:
    if not value:
        return
    try:
        evt = CloudEvent.model_validate_json(value)
        if evt.type not in REGION_EVENTS:
            return
        state = RegionState.model_validate(evt.data)
    except ValidationError:
        log.warning("ignoring malformed grid.v1 message")
        return
    boundary = shapely.geometry.shape(state.geometry) if state.geometry else None
    directory.apply(
        RegionInfo(
            state.code,
            state.name,
            state.level,
            state.parent_code,
            state.grid_class,
            state.status,
            state.version,
        ),
        boundary,
    )
