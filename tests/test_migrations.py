"""Each service's Alembic history builds exactly the schema its models describe."""

from __future__ import annotations

import asyncio
import importlib

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from gridgov_common.migrations import compare_type, include_object, upgrade

SERVICES = ["grid", "inspection", "population", "notify"]


@pytest.mark.parametrize("service", SERVICES)
async def test_migrations_match_models(service, database_factory):
    url = database_factory(f"mig_{service}")
    await asyncio.to_thread(upgrade, service, "head", url)
    metadata = importlib.import_module(f"gridgov_{service}.models").Base.metadata
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(
                        sync, opts={"compare_type": compare_type, "include_object": include_object}
                    ),
                    metadata,
                )
            )
    finally:
        await engine.dispose()
    assert diff == [], f"models and migrations differ; run `gridgov revision {service} -m ...`"
