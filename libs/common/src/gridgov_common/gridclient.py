"""The one synchronous call other services make to grid-svc: which grid holds this point.

Used when a place is registered or moved (a venue, a house); the caller's request waits for
the answer, so one pooled HTTP client is kept per service and the failure answers are the same
everywhere: 422 ``outside-grid`` (fix the coordinates) or 503 ``grid-svc-unavailable``
(nothing was saved, retry).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from .auth import service_token
from .errors import Problem, invalid
from .settings import ServiceSettings


@dataclass(frozen=True)
class Location:
    """A point resolved to its grid; ``lon``/``lat`` are WGS-84 whatever the input CRS was."""

    lon: float
    lat: float
    grid_code: str
    grid_name: str
    grid_class: str | None
    ancestors: list[dict[str, Any]]

    def ancestor(self, level: str) -> str | None:
        return next((a["code"] for a in self.ancestors if a["level"] == level), None)

    @property
    def community_code(self) -> str | None:
        return self.ancestor("community")

    @property
    def street_code(self) -> str | None:
        return self.ancestor("street")


class GridClient:
    def __init__(self, settings: ServiceSettings) -> None:
        self._settings = settings
        # Connections are pooled per origin; the URL is read per call so it follows settings.
        self._http = httpx.AsyncClient(timeout=settings.grid_svc_timeout_seconds)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def locate(self, lon: float, lat: float, crs: str = "wgs84") -> Location:
        url = self._settings.grid_svc_url.rstrip("/") + "/v1/locate"
        params: dict[str, str | float] = {"lon": lon, "lat": lat, "crs": crs}
        headers = {"Authorization": f"Bearer {service_token(self._settings)}"}
        for attempt in (1, 2):
            try:
                r = await self._http.get(url, params=params, headers=headers)
                break
            except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
                # A pooled connection grid-svc closed as idle just as it was reused: the
                # request never ran, and a lookup is safe to send again on a new one.
                if attempt == 2:
                    raise _unavailable(type(exc).__name__) from None
            except httpx.HTTPError as exc:
                raise _unavailable(type(exc).__name__) from None
        if r.status_code == 404:
            raise invalid(
                "outside-grid",
                f"location [{lon}, {lat}] ({crs}) lies outside every active grid; "
                "check the coordinates and their crs",
            )
        if r.status_code == 422:
            raise invalid("invalid-location", f"grid-svc refused the location: {r.text[:300]}")
        if r.status_code != 200:
            raise _unavailable(f"HTTP {r.status_code}")
        body = r.json()
        point = body.get("point") or [lon, lat]
        grid = body["grid"]
        return Location(
            lon=float(point[0]),
            lat=float(point[1]),
            grid_code=grid["code"],
            grid_name=grid.get("name", grid["code"]),
            grid_class=grid.get("grid_class"),
            ancestors=body.get("ancestors", []),
        )


def _unavailable(why: str) -> Problem:
    return Problem(
        503,
        "grid-svc-unavailable",
        f"grid-svc could not resolve the location ({why}); nothing was saved, retry later",
        headers={"Retry-After": "5"},
    )
