"""pytest plugin shared by every service's tests (registered as the ``gridgov`` plugin).

Tests talk to real parts: a real Kafka-protocol broker (the embedded Tansu binary, started on a
free port), a real database (a temporary SQLite file, or a fresh PostgreSQL/PostGIS database
per test when ``GRIDGOV_TEST_POSTGRES_URL`` is set) and real HTTP servers (uvicorn on a free
loopback port).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from .auth import issue_token
from .embedded import Broker, free_port
from .settings import ServiceSettings

POSTGRES_ENV = "GRIDGOV_TEST_POSTGRES_URL"
# One partition per topic in the tests: events of different keys arrive in the order sent.
TEST_PARTITIONS = 1


@pytest.fixture
def kafka_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker of the test's own (it starts in milliseconds), so no test sees another's events."""
    broker = Broker(log_path=tmp_path / "tansu.log", partitions=TEST_PARTITIONS).start()
    yield broker
    broker.stop()


@pytest.fixture
def database_factory(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Make fresh, empty databases for one test: ``url = database_factory("grid")``."""
    admin_url = os.environ.get(POSTGRES_ENV)
    created: list[str] = []

    def make(label: str) -> str:
        if not admin_url:
            return f"sqlite+aiosqlite:///{tmp_path / f'{label}.db'}"
        name = f"gg_test_{label}_{uuid.uuid4().hex[:10]}"
        _pg_admin(admin_url, f'CREATE DATABASE "{name}"')
        created.append(name)
        base, _, _ = admin_url.rpartition("/")
        return f"{base}/{name}"

    yield make
    for name in created:
        _pg_admin(admin_url or "", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database_url(database_factory: Callable[[str], str]) -> str:
    """A fresh, empty database for one test."""
    return database_factory("service")


def _pg_admin(admin_url: str, statement: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run()) if not _loop_running() else _run_in_thread(run)


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False


def _run_in_thread(coro_fn: Callable[[], Any]) -> None:
    import threading

    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coro_fn())
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if errors:
        raise errors[0]


@pytest.fixture
def launch(
    kafka_broker: Broker, database_factory: Callable[[str], str]
) -> Callable[..., contextlib.AbstractAsyncContextManager[RunningService]]:
    """Start a service on a real HTTP server: ``async with launch("grid") as grid: ...``.

    Each service gets its own fresh database and the test's broker; keyword arguments override
    its settings (``launch("inspection", grid_svc_url=grid.url)``).
    """
    urls: dict[str, str] = {}

    @contextlib.asynccontextmanager
    async def start(service: str, **overrides: Any) -> AsyncIterator[RunningService]:
        main = importlib.import_module(f"gridgov_{service}.main")
        settings_cls = importlib.import_module(f"gridgov_{service}.settings").Settings
        if service not in urls:
            urls[service] = database_factory(service)
        values: dict[str, Any] = {
            "database_url": urls[service],
            "kafka_bootstrap_servers": kafka_broker.bootstrap,
            "outbox_poll_seconds": 0.2,
            "log_json": False,
            "topic_partitions": TEST_PARTITIONS,
        }
        values.update(overrides)
        async with serve(main.create_app(main.definition(settings_cls(**values)))) as svc:
            yield svc

    return start


def token_for(
    settings: ServiceSettings | None = None,
    *,
    roles: list[str],
    scopes: list[str] | None = None,
    subject: str = "tester",
    **kw: Any,
) -> str:
    return issue_token(
        settings or ServiceSettings(),
        subject=subject,
        roles=roles,
        scopes=scopes if scopes is not None else ["*"],
        **kw,
    )


@dataclass
class RunningService:
    app: FastAPI
    url: str

    @property
    def ctx(self) -> Any:
        return self.app.state.ctx

    def client(self, token: str | None = None, **kw: Any) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30, **kw)


@contextlib.asynccontextmanager
async def serve(app: FastAPI, port: int | None = None) -> AsyncIterator[RunningService]:
    """Run ``app`` on a real uvicorn server on loopback inside the test's event loop."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 30
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("server exited during start-up")
        if time.monotonic() > deadline:
            raise TimeoutError("server did not start")
        await asyncio.sleep(0.02)
    try:
        yield RunningService(app, f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        await task


async def eventually(check: Callable[[], Any], timeout: float = 15.0, interval: float = 0.1) -> Any:
    """Poll ``check`` (sync or async) until it returns a truthy value or raise with the last one."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")


@dataclass
class WebhookReceiver:
    """A department's system in tests: a real HTTP server that verifies Standard Webhooks
    signatures with the reference library and records what it accepted.

    ``fail_first`` answers the first N attempts with ``fail_status`` (to exercise retries).
    """

    secret: str
    fail_first: int = 0
    fail_status: int = 500
    port: int = 0
    accepted: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0
    bad_signatures: int = 0
    raw: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.port = self.port or free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def app(self) -> FastAPI:
        import json

        from standardwebhooks import Webhook

        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            self.attempts += 1
            body = await request.body()
            self.raw.append((body, dict(request.headers)))
            try:
                Webhook(self.secret).verify(body, dict(request.headers))
            except Exception:
                self.bad_signatures += 1
                return Response(status_code=400)
            if self.attempts <= self.fail_first:
                return Response(status_code=self.fail_status)
            self.accepted.append({"id": request.headers["webhook-id"], **json.loads(body)})
            return Response(status_code=200)

        return app

    def serve(self) -> contextlib.AbstractAsyncContextManager[RunningService]:
        return serve(self.app(), port=self.port)
