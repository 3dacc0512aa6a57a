"""Alembic, one migration history per service, driven programmatically.

Each service package holds ``migrations/`` (``env.py`` calling :func:`run_env`, and
``versions/``). ``gridgov migrate <service>`` upgrades the database named by the settings.
"""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine


def alembic_config(service: str, url: str | None = None) -> Config:
    package = importlib.import_module(f"gridgov_{service}")
    script_location = Path(package.__file__ or "").parent / "migrations"
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    if url is None:
        settings_module = importlib.import_module(f"gridgov_{service}.settings")
        url = settings_module.Settings().resolved_database_url()
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(service: str, revision: str = "head", url: str | None = None) -> None:
    command.upgrade(alembic_config(service, url), revision)


def new_revision(service: str, message: str) -> None:
    """Autogenerate the next revision from the models, against a scratch SQLite database
    brought to the current head (so only the difference is written)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/scratch.db"
        cfg = alembic_config(service, url)
        command.upgrade(cfg, "head")
        command.revision(cfg, message=message, autogenerate=True)


POSTGIS_TABLES = {"spatial_ref_sys", "geometry_columns", "geography_columns"}


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Leave PostGIS's own tables out of autogenerate and drift checks."""
    return not (type_ == "table" and name in POSTGIS_TABLES)


def compare_type(
    context: Any,
    inspected_column: Any,
    metadata_column: Any,
    inspected_type: Any,
    metadata_type: Any,
) -> bool | None:
    """PostGIS reflects geometry columns as geoalchemy2 types, ours is a TypeDecorator over
    them: compare the geometry kind only; everything else uses Alembic's default."""
    from .db import Geometry

    if isinstance(metadata_type, Geometry):
        reflected = getattr(inspected_type, "geometry_type", None)
        if reflected is None:  # SQLite: stored as a BLOB
            return False
        return str(reflected).upper() != metadata_type.geometry_type.upper()
    return None


def run_env(metadata: MetaData) -> None:
    """Body of every service's ``env.py``: online migrations over the async engine."""
    url = context.config.get_main_option("sqlalchemy.url") or ""

    def do_run(connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS postgis")
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run_async() -> None:
        # As the services do: a failed data migration must not print personal data.
        engine = create_async_engine(url, poolclass=pool.NullPool, hide_parameters=True)
        async with engine.connect() as conn:
            await conn.run_sync(do_run)
            await conn.commit()
        await engine.dispose()

    def run_sync_in_new_loop() -> Any:
        return asyncio.run(run_async())

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        run_sync_in_new_loop()
        return
    # Called from inside a running loop (tests): run in a worker thread with its own loop.
    import threading

    errors: list[BaseException] = []

    def target() -> None:
        try:
            run_sync_in_new_loop()
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if errors:
        raise errors[0]
