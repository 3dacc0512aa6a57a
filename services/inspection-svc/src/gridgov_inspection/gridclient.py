"""The one synchronous call to grid-svc: resolve a point to its grid (venue registration/move)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from gridgov_common.auth import service_token
from gridgov_common.errors import Problem, invalid

from .settings import Settings


@dataclass(frozen=True)
class Located:
    lon: float
    lat: float
    grid_code: str
    grid_name: str
    grid_class: str | None
    community_code: str | None
    street_code: str | None
    ancestors: list[dict[str, Any]]


def _unavailable(why: str) -> Problem:
    return Problem(
        503,
        "grid-svc-unavailable",
        f"grid-svc could not resolve the location ({why}); nothing was saved, retry later",
        headers={"Retry-After": "5"},
    )


async def locate(settings: Settings, lon: float, lat: float, crs: str = "wgs84") -> Located:
    try:
        async with httpx.AsyncClient(
            base_url=settings.grid_svc_url, timeout=settings.grid_svc_timeout_seconds
        ) as http:
            r = await http.get(
                "/v1/locate",
                params={"lon": lon, "lat": lat, "crs": crs},
                headers={"Authorization": f"Bearer {service_token(settings)}"},
            )
    except httpx.HTTPError as exc:
        raise _unavailable(type(exc).__name__) from exc
    if r.status_code == 404:
        raise invalid(
            "venue-outside-grid",
            f"location [{lon}, {lat}] ({crs}) lies outside every grid; check the coordinates",
        )
    if r.status_code == 422:
        raise invalid("invalid-location", f"grid-svc refused the location: {r.text[:300]}")
    if r.status_code != 200:
        raise _unavailable(f"HTTP {r.status_code}")
    body = r.json()
    ancestors = body.get("ancestors", [])
    by_level = {a["level"]: a["code"] for a in ancestors}
    point = body.get("point") or [lon, lat]
    grid = body["grid"]
    return Located(
        lon=float(point[0]),
        lat=float(point[1]),
        grid_code=grid["code"],
        grid_name=grid.get("name", grid["code"]),
        grid_class=grid.get("grid_class"),
        community_code=by_level.get("community"),
        street_code=by_level.get("street"),
        ancestors=ancestors,
    )
