"""The app factory: every service's ``main.py`` describes itself and calls :func:`create_app`.

The factory wires the shared mechanisms the same way everywhere: settings, database, bus,
outbox relay, inbox consumer, auth, problem+json errors, write rate limits, Idempotency-Key,
health and metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.telemetry import TelemetryConfig
from sqlalchemy import MetaData, delete
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp, Receive, Scope, Send

from .auth import Authenticator
from .bus import Bus
from .db import Database, PlatformTables, utcnow
from .errors import install_error_handlers
from .events import CloudEvent, EventPayload, dlq_topic, make_event
from .gridclient import GridClient
from .idempotency import IdempotencyMiddleware
from .inbox import Handler, InboxConsumer
from .observability import RequestContextMiddleware, configure_logging, metrics_endpoint
from .openapi import document_problems
from .outbox import OutboxRelay, record
from .ratelimit import WRITE_METHODS, RateLimitMiddleware
from .requestguard import RequestGuard
from .settings import ServiceSettings

log = logging.getLogger("gridgov.app")


@dataclass
class ServiceContext:
    """What a running service holds; reachable from routes as ``request.app.state.ctx``."""

    settings: ServiceSettings
    db: Database
    tables: PlatformTables
    bus: Bus
    relay: OutboxRelay
    consumer: InboxConsumer | None
    state: dict[str, Any] = field(default_factory=dict)
    _grid: GridClient | None = None

    @property
    def grid(self) -> GridClient:
        """A pooled client for grid-svc, opened on first use and closed with the service."""
        if self._grid is None:
            self._grid = GridClient(self.settings)
        return self._grid

    async def publish(
        self,
        session: AsyncSession,
        payload: EventPayload,
        *,
        subject: str,
        gridcode: str | None = None,
    ) -> CloudEvent:
        """Record ``payload`` as an event in the caller's transaction (the outbox)."""
        evt = make_event(
            payload, source=self.settings.service_name, subject=subject, gridcode=gridcode
        )
        await record(session, self.tables, evt)
        return evt


Worker = Callable[[ServiceContext], Coroutine[Any, Any, None]]


@dataclass
class ServiceDefinition:
    settings: ServiceSettings
    metadata: MetaData
    tables: PlatformTables
    routers: list[APIRouter]
    title: str
    description: str = ""
    produces: list[str] = field(default_factory=list)
    handlers: dict[str, Handler] = field(default_factory=dict)
    # Long-running background loops (schedulers, delivery workers), started after the database.
    workers: list[Worker] = field(default_factory=list)
    # Run once at start, before serving (e.g. warm an in-memory index from the database).
    on_startup: list[Worker] = field(default_factory=list)


def create_app(defn: ServiceDefinition) -> FastAPI:
    settings = defn.settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.service_name, settings.log_level, settings.log_json)
        db = Database(settings.resolved_database_url(), defn.metadata)
        if settings.create_schema:
            await db.create_schema()
        bus = Bus(settings.kafka_bootstrap_servers, settings.service_name)
        consumer = None
        if defn.handlers:
            consumer = InboxConsumer(
                db,
                defn.tables,
                bus,
                settings.service_name,
                defn.handlers,
                max_attempts=settings.consumer_max_attempts,
                audit_seconds=settings.inbox_audit_seconds,
            )
        topics = list(defn.produces)
        if consumer is not None:
            topics += consumer.topics
            topics += [dlq_topic(t, settings.service_name) for t in consumer.topics]

        async def ensure_topics() -> None:
            await bus.ensure_topics(
                topics, settings.topic_partitions, settings.topic_replication_factor
            )

        relay = OutboxRelay(
            db,
            defn.tables,
            bus,
            settings.service_name,
            poll_seconds=settings.outbox_poll_seconds,
            batch_size=settings.outbox_batch_size,
            audit_seconds=settings.outbox_audit_seconds,
            replay_seconds=settings.outbox_replay_seconds,
            ensure_topics=ensure_topics,
        )
        ctx = ServiceContext(settings, db, defn.tables, bus, relay, consumer)
        app.state.ctx = ctx
        tasks: list[asyncio.Task[None]] = []
        try:
            for hook in defn.on_startup:
                await hook(ctx)
            tasks.append(
                asyncio.create_task(_retry("creating topics", ensure_topics), name="topics")
            )
            tasks.append(asyncio.create_task(relay.run(), name="outbox-relay"))
            if consumer is not None:
                tasks.append(asyncio.create_task(consumer.run(), name="inbox"))
            tasks.append(asyncio.create_task(_sweep_idempotency(ctx), name="idempotency-sweep"))
            for worker in defn.workers:
                tasks.append(
                    asyncio.create_task(worker(ctx), name=getattr(worker, "__name__", "w"))
                )
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if ctx._grid is not None:
                await ctx._grid.aclose()
            await bus.close()
            await db.dispose()

    app = FastAPI(
        title=defn.title,
        description=defn.description,
        version="1.0.0",
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
        telemetry=telemetry_config(settings.otel_enabled),
    )
    app.state.authenticator = Authenticator(settings)
    install_error_handlers(app)
    app.add_middleware(WritePath, settings=settings)
    app.add_middleware(
        RequestGuard,
        max_body_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
    )
    app.add_middleware(RequestContextMiddleware, service=settings.service_name)
    # Routes go straight onto the app's router, ahead of the docs pages. include_router would
    # wrap each router in a layer that re-resolves its routes on every request (~20 µs), and
    # routes are matched in order, so the API that is called at rate comes first. The routers
    # carry their own prefix and no router-level options, so nothing include_router adds is lost.
    api_routes = [route for router in defn.routers for route in router.routes]
    app.router.routes[:0] = [*api_routes, *_health_router().routes]
    document_problems(app, api_routes)
    return app


def telemetry_config(enabled: bool) -> TelemetryConfig:
    """FastAPI's OpenTelemetry switches, all on or all off (``GRIDGOV_OTEL_ENABLED``)."""
    return {"tracing": enabled, "metrics": enabled, "logs": enabled, "operation_spans": enabled}


class WritePath:
    """Writes go through the write budget, then Idempotency-Key; reads go straight on.

    One method check is all a read pays for both (``GET /v1/locate`` is measured against a bare
    endpoint). The budget comes first: a refused write claims no key, so its retry runs anew.
    """

    def __init__(self, app: ASGIApp, settings: ServiceSettings) -> None:
        self.reads = app
        writes: ASGIApp = IdempotencyMiddleware(
            app, max_body_bytes=max(settings.max_body_bytes, settings.max_upload_bytes)
        )
        if settings.rate_limit_writes > 0:
            writes = RateLimitMiddleware(writes, settings)
        self.writes = writes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in WRITE_METHODS:
            await self.writes(scope, receive, send)
        else:
            await self.reads(scope, receive, send)


async def _retry(what: str, action: Callable[[], Awaitable[None]]) -> None:
    """Run ``action`` until it succeeds (e.g. while the broker is still starting)."""
    delay = 0.5
    while True:
        try:
            await action()
            return
        except Exception as exc:
            log.warning("%s failed, retrying in %.1fs: %s", what, delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


async def _sweep_idempotency(ctx: ServiceContext) -> None:
    table = ctx.tables.idempotency
    while True:
        cutoff = utcnow() - timedelta(hours=ctx.settings.idempotency_ttl_hours)
        try:
            async with ctx.db.transaction() as session:
                await session.execute(delete(table).where(table.c.started_at < cutoff))
        except Exception as exc:
            log.warning("idempotency sweep failed: %s", exc)
        await asyncio.sleep(3600)


def _health_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="Liveness: the process is serving")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="Readiness: database and broker reachable")
    async def readyz(request: Request) -> JSONResponse:
        ctx: ServiceContext = request.app.state.ctx
        checks: dict[str, str] = {}
        for name, probe in (("database", ctx.db.ping), ("broker", ctx.bus.ping)):
            try:
                await asyncio.wait_for(probe(), 3.0)
                checks[name] = "ok"
            except Exception as exc:
                checks[name] = f"unavailable: {type(exc).__name__}"
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "unready", "checks": checks},
            status_code=200 if ready else 503,
        )

    router.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    return router


async def get_ctx(request: Request) -> ServiceContext:
    # async: a plain def dependency would be run in a thread pool on every request.
    ctx: ServiceContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ServiceContext, Depends(get_ctx)]
