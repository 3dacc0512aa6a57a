"""The command dashboard's server: static files, a read-only API proxy, the live feed.

The browser talks to this one origin only:

* ``/`` and ``/app/…`` — the page (``dashboard/`` in the checkout), ``/vendor/…`` — Leaflet and
  ECharts from ``dashboard/node_modules`` (installed by ``npm ci`` from the lockfile; nothing
  comes from a CDN at run time).
* ``/api/<service>/…`` — GET requests forwarded to the four services with the caller's own
  bearer token, so every service still applies its own roles and region scopes. Same origin
  means no CORS middleware in the services and no preflight before every authorised call.
* ``/live`` — server-sent events: the platform's events (``inspection.v1``, ``notify.v1``,
  ``population.v1``) read from Kafka as they are published, filtered by the caller's scopes
  on the events' ``gridcode``. Read without a consumer group from the end of each partition:
  a dashboard is a viewer, it commits nothing and replays nothing.
* ``/auth/demo/<identity>`` — on the embedded default only (the development signing key, no JWKS):
  tokens for a few demo identities, so a person can look around without the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from sse_starlette.sse import EventSourceResponse

from .auth import Authenticator, Principal, bearer_token, issue_token
from .errors import Problem, install_error_handlers
from .events import CloudEvent
from .settings import DEV_SIGNING_KEY, ServiceSettings

log = logging.getLogger("gridgov.dashboard")

LIVE_TOPICS = ("inspection.v1", "notify.v1", "population.v1")
VENDOR_FILES = {
    "leaflet.js": "leaflet/dist/leaflet-src.esm.js",
    "leaflet.css": "leaflet/dist/leaflet.css",
    "echarts.js": "echarts/dist/echarts.esm.min.mjs",
}


class DashboardSettings(ServiceSettings):
    service_name: str = "dashboard"
    inspection_svc_url: str = "http://127.0.0.1:8102"
    population_svc_url: str = "http://127.0.0.1:8103"
    notify_svc_url: str = "http://127.0.0.1:8104"
    # The page and its node_modules; the checkout's dashboard/ by default.
    dashboard_dir: Path = Path.cwd() / "dashboard"
    # Optional background map, e.g. an internal tile server "https://tiles.example/{z}/{x}/{y}.png".
    # Empty: the grid polygons are the map (works on a closed network).
    dashboard_tile_url: str = ""
    dashboard_tile_attribution: str = ""
    upstream_timeout_seconds: float = 15.0


@dataclass(frozen=True)
class DemoIdentity:
    key: str
    label_zh: str
    label_en: str
    roles: tuple[str, ...]
    scopes: tuple[str, ...]


# The demo city's codes (gridgov_common.demo): district 宝安区, street 新安街道, community 海裕社区.
DEMO_IDENTITIES = (
    DemoIdentity("command", "区指挥中心", "District command centre", ("admin",), ("440306",)),
    DemoIdentity("police", "新安派出所", "Xin'an police station", ("viewer",), ("440306001",)),
    DemoIdentity("community", "海裕社区居委会", "Haiyu community", ("viewer",), ("440306001001",)),
)


class LiveHub:
    """Reads the platform's topics and hands each event to every connected browser."""

    QUEUE_SIZE = 1000

    def __init__(self, bootstrap_servers: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.subscribers: set[asyncio.Queue[CloudEvent]] = set()

    async def run(self) -> None:
        delay = 0.5
        while True:
            consumer = AIOKafkaConsumer(
                *LIVE_TOPICS,
                bootstrap_servers=self.bootstrap_servers,
                client_id="gridgov-dashboard",
                group_id=None,
                auto_offset_reset="latest",
                enable_auto_commit=False,
                # Topics created after start (a fresh broker) are picked up within seconds.
                metadata_max_age_ms=3000,
            )
            try:
                await consumer.start()
                delay = 0.5
                async for message in consumer:
                    self._fan_out(message.value)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("live feed: broker unavailable, retrying in %.1fs: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()

    def _fan_out(self, raw: bytes | None) -> None:
        if not raw:
            return
        try:
            evt = CloudEvent.model_validate_json(raw)
        except ValueError:
            log.warning("live feed: skipped a message that is not a CloudEvent")
            return
        for queue in self.subscribers:
            with contextlib.suppress(asyncio.QueueFull):  # a stalled browser loses events only
                queue.put_nowait(evt)


def visible(principal: Principal, evt: CloudEvent) -> bool:
    return principal.covers(evt.gridcode)


def sse_message(evt: CloudEvent) -> dict[str, str]:
    data = {
        "id": evt.id,
        "type": evt.type,
        "subject": evt.subject,
        "gridcode": evt.gridcode,
        "time": evt.time.isoformat(),
        "data": evt.data,
    }
    return {"id": evt.id, "event": evt.type, "data": json.dumps(data, ensure_ascii=False)}


def create_dashboard(settings: DashboardSettings | None = None) -> FastAPI:
    settings = settings or DashboardSettings()
    upstreams = {
        "grid": settings.grid_svc_url,
        "inspection": settings.inspection_svc_url,
        "population": settings.population_svc_url,
        "notify": settings.notify_svc_url,
    }
    root = settings.dashboard_dir
    hub = LiveHub(settings.kafka_bootstrap_servers)
    authenticator = Authenticator(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.http = httpx.AsyncClient(timeout=settings.upstream_timeout_seconds)
        task = asyncio.create_task(hub.run(), name="live-feed")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await app.state.http.aclose()

    app = FastAPI(title="gridgov dashboard", lifespan=lifespan, docs_url=None, redoc_url=None)
    install_error_handlers(app)
    # Demo identities only on the embedded default: the development key, no identity provider.
    demo_enabled = (
        not settings.jwt_jwks_url and settings.jwt_signing_key.get_secret_value() == DEV_SIGNING_KEY
    )

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(root / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/config.json")
    async def config() -> dict[str, Any]:
        return {
            "tile_url": settings.dashboard_tile_url or None,
            "tile_attribution": settings.dashboard_tile_attribution,
            "demo_identities": [
                {"key": d.key, "zh": d.label_zh, "en": d.label_en, "scopes": list(d.scopes)}
                for d in DEMO_IDENTITIES
            ]
            if demo_enabled
            else [],
        }

    @app.post("/auth/demo/{identity}")
    async def demo_token(identity: str) -> dict[str, str]:
        if not demo_enabled:
            raise Problem(
                404, "demo-sign-in-disabled", "sign in with a token from the identity provider"
            )
        found = next((d for d in DEMO_IDENTITIES if d.key == identity), None)
        if found is None:
            raise Problem(404, "unknown-identity", f"no demo identity {identity!r}")
        token = issue_token(
            settings,
            subject=f"demo-{found.key}",
            roles=found.roles,
            scopes=found.scopes,
            ttl=timedelta(hours=8),
        )
        return {"token": token}

    @app.get("/api/{service}/{path:path}")
    async def proxy(service: str, path: str, request: Request) -> Response:
        base = upstreams.get(service)
        if base is None:
            raise Problem(404, "unknown-service", f"no service {service!r}")
        if not path.startswith("v1/"):
            raise Problem(404, "not-proxied", "only the services' /v1 API is proxied")
        headers = {"Accept": request.headers.get("accept", "application/json")}
        if "authorization" in request.headers:
            headers["Authorization"] = request.headers["authorization"]
        http: httpx.AsyncClient = request.app.state.http
        try:
            upstream = await http.get(
                f"{base}/{path}", params=list(request.query_params.multi_items()), headers=headers
            )
        except httpx.HTTPError as exc:
            raise Problem(
                503, "service-unavailable", f"{service}-svc did not answer: {type(exc).__name__}"
            ) from exc
        keep = {
            k: v
            for k, v in upstream.headers.items()
            if k.lower() in ("content-type", "www-authenticate", "etag", "cache-control")
        }
        return Response(upstream.content, status_code=upstream.status_code, headers=keep)

    @app.get("/live")
    async def live(request: Request) -> EventSourceResponse:
        principal = await authenticator.verify(bearer_token(request))
        queue: asyncio.Queue[CloudEvent] = asyncio.Queue(hub.QUEUE_SIZE)

        async def messages() -> AsyncIterator[dict[str, str]]:
            hub.subscribers.add(queue)
            try:
                yield {"comment": "connected"}
                while True:
                    evt = await queue.get()
                    if visible(principal, evt):
                        yield sse_message(evt)
            finally:
                hub.subscribers.discard(queue)

        # ping: a comment every 15 s keeps proxies from closing an idle stream.
        return EventSourceResponse(
            messages(), ping=15, sep="\n", headers={"X-Accel-Buffering": "no"}
        )

    @app.get("/vendor/{name}", include_in_schema=False)
    async def vendor(name: str) -> FileResponse:
        rel = VENDOR_FILES.get(name)
        path = root / "node_modules" / rel if rel else None
        if path is None or not path.is_file():
            raise Problem(
                404,
                "vendor-missing",
                f"{name} is not installed: run `make dashboard-deps` (npm ci in dashboard/)",
            )
        return FileResponse(path, headers={"Cache-Control": "max-age=3600"})

    if (root / "src").is_dir():
        app.mount("/app", StaticFiles(directory=root / "src"), name="app")

    return app


def app() -> FastAPI:
    """uvicorn factory: ``uvicorn --factory gridgov_common.dashboard:app``."""
    return create_dashboard()
