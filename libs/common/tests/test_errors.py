"""Error answers: an unreachable database is a 503 to retry, never a 500."""

from __future__ import annotations

import httpx
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


async def test_a_bug_is_a_bare_500_without_its_trace():
    async def probe():
        raise KeyError("secret internals")

    r = await call(app_with(probe))
    assert r.status_code == 500
    assert "secret internals" not in r.text
    assert r.json()["type"].endswith("internal-error")
