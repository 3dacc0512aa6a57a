"""The ceiling for any HTTP endpoint here: a bare FastAPI app returning a constant JSON body.

No middleware, no auth, no database. Served with the same uvicorn options as the service it
is compared with (``bench.harness.UVICORN_OPTIONS``) and FastAPI configured as the services
are (their telemetry setting, off by default), it answers ``GET /v1/locate`` with a
body shaped and sized like a real grid-svc locate answer, so the comparison isolates the
service's own work. Query parameters and headers are accepted and ignored.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from gridgov_common.app import telemetry_config
from gridgov_common.settings import ServiceSettings

BODY: dict[str, Any] = {
    "point": [114.012345678901, 22.812345678901],
    "grid": {
        "code": "440306001001001",
        "name": "Grid 440306001001001",
        "level": "grid",
        "grid_class": "regular",
    },
    "ancestors": [
        {"code": "440306", "name": "Bench District", "level": "district"},
        {"code": "440306001", "name": "Street 001", "level": "street"},
        {"code": "440306001001", "name": "Community 001-001", "level": "community"},
    ],
}

app = FastAPI(
    title="bare",
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
    telemetry=telemetry_config(ServiceSettings().otel_enabled),
)


@app.get("/v1/locate")
async def locate() -> dict[str, Any]:
    return BODY


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ready"}
