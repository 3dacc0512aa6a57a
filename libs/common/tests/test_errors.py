"""Error answers: an unreachable database is a 503 to retry, never a 500."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from gridgov_common.errors import install_error_handlers


def app_with(route) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.get("/probe")(route)
    return app


async def call(app: FastAPI) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
        return await http.get("/probe")


async def test_unreachable_database_answers_503_with_retry_after(tmp_path):
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/missing/dir/db.sqlite")

    async def probe():
        async with engine.connect() as conn:  # the directory does not exist: cannot open
            await conn.execute(text("select 1"))

    r = await call(app_with(probe))
    await engine.dispose()
    assert r.status_code == 503
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["retry-after"] == "2"
    assert r.json()["type"].endswith("database-unavailable")


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.CannotConnectNowError("the database system is not yet accepting"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_a_database_starting_up_or_shutting_down_answers_503(error):
    """What PostgreSQL answers while it restarts reaches us as the driver's own error (the
    reliability suite's database restart got 500s for CannotConnectNowError)."""

    async def probe():
        raise error

    r = await call(app_with(probe))
    assert r.status_code == 503
    assert r.json()["type"].endswith("database-unavailable")


async def test_a_database_error_that_is_a_bug_stays_a_500():
    async def probe():
        raise asyncpg.exceptions.UndefinedColumnError("column does not exist")

    r = await call(app_with(probe))
    assert r.status_code == 500


async def test_a_bug_is_a_bare_500_without_its_trace():
    async def probe():
        raise KeyError("secret internals")

    r = await call(app_with(probe))
    assert r.status_code == 500
    assert "secret internals" not in r.text
    assert r.json()["type"].endswith("internal-error")
