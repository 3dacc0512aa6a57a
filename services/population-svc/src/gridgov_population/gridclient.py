"""Calls to grid-svc: resolve a location to its grid (a short wait is acceptable here)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from gridgov_common.auth import service_token
from gridgov_common.errors import Problem, invalid
from gridgov_common.settings import ServiceSettings


@dataclass(frozen=True)
class Located:
    grid_code: str
    lon: float
    lat: float
    ancestors: list[str]


async def locate(settings: ServiceSettings, lon: float, lat: float, crs: str) -> Located:
    """The grid containing the point; 422 outside every grid, 503 if grid-svc is unreachable."""
    url = settings.grid_svc_url.rstrip("/") + "/v1/locate"
    try:
        async with httpx.AsyncClient(timeout=5.0) as http:
            r = await http.get(
                url,
                params={"lon": lon, "lat": lat, "crs": crs},
                headers={"Authorization": f"Bearer {service_token(settings)}"},
            )
    except httpx.HTTPError as exc:
        raise _unavailable(f"{type(exc).__name__}") from None
    if r.status_code == 404 and "outside-grid" in r.text:
        raise invalid(
            "outside-grid", f"location [{lon}, {lat}] ({crs}) lies outside every active grid"
        )
    if r.status_code == 422:
        raise invalid("invalid-location", f"grid-svc rejected the location: {r.text[:300]}")
    if r.status_code != 200:
        raise _unavailable(f"HTTP {r.status_code}")
    body = r.json()
    point = body.get("point") or [lon, lat]
    return Located(
        grid_code=body["grid"]["code"],
        lon=float(point[0]),
        lat=float(point[1]),
        ancestors=[a["code"] for a in body.get("ancestors", [])],
    )


def _unavailable(why: str) -> Problem:
    return Problem(
        503,
        "grid-service-unavailable",
        f"cannot resolve the location to a grid right now (grid-svc: {why}); nothing was "
        "saved, retry later",
        headers={"Retry-After": "5"},
    )
