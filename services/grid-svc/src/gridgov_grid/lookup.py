"""Point → grid lookup, served from the in-memory index (no database on the hot path)."""

from __future__ import annotations

import asyncio

from gridgov_common.errors import Problem, invalid

from . import geo
from .directory import Directory, RegionInfo
from .schemas import BatchLocateItem, BatchLocateOut, LocatedGrid, LocateOut, RegionRef

# Batches this large are resolved in a worker thread so the event loop keeps serving.
_THREAD_THRESHOLD = 2_000


def _check_point(lon: float, lat: float, index: int | None = None) -> None:
    where = f"points[{index}]: " if index is not None else ""
    if not (-180.0 <= lon <= 180.0) or lon != lon:
        raise invalid("coordinates-out-of-range", f"{where}lon {lon} is outside [-180, 180]")
    if not (-90.0 <= lat <= 90.0) or lat != lat:
        raise invalid("coordinates-out-of-range", f"{where}lat {lat} is outside [-90, 90]")


def _refs(directory: Directory, info: RegionInfo) -> list[RegionRef]:
    return [
        RegionRef(code=a.code, name=a.name, level=a.level)  # type: ignore[arg-type]
        for a in directory.ancestors(info.code)
    ]


def _grid(info: RegionInfo) -> LocatedGrid:
    return LocatedGrid(code=info.code, name=info.name, grid_class=info.grid_class)  # type: ignore[arg-type]


def locate(directory: Directory, lon: float, lat: float, crs: str) -> LocateOut:
    _check_point(lon, lat)
    wlon, wlat = geo.to_wgs84(lon, lat, crs)
    info = directory.locate(wlon, wlat)
    if info is None:
        raise Problem(
            404,
            "outside-grid",
            f"point [{wlon:.6f}, {wlat:.6f}] (WGS-84) lies outside every active grid",
            point=[wlon, wlat],
        )
    return LocateOut(point=(wlon, wlat), grid=_grid(info), ancestors=_refs(directory, info))


async def locate_batch(
    directory: Directory, points: list[tuple[float, float]], crs: str, limit: int
) -> BatchLocateOut:
    if len(points) > limit:
        raise invalid(
            "batch-too-large",
            f"{len(points)} points given; a batch takes at most {limit}",
            limit=limit,
        )
    for i, (lon, lat) in enumerate(points):
        _check_point(lon, lat, i)
    converted = [geo.to_wgs84(lon, lat, crs) for lon, lat in points] if crs != "wgs84" else points
    lons = [p[0] for p in converted]
    lats = [p[1] for p in converted]
    if len(points) >= _THREAD_THRESHOLD:
        found = await asyncio.to_thread(directory.locate_many, lons, lats)
    else:
        found = directory.locate_many(lons, lats)
    ancestors_cache: dict[str, list[RegionRef]] = {}
    results = []
    for point, info in zip(converted, found, strict=True):
        if info is None:
            results.append(BatchLocateItem(point=point, grid=None, ancestors=[]))
            continue
        refs = ancestors_cache.get(info.parent_code or "")
        if refs is None:
            refs = ancestors_cache[info.parent_code or ""] = _refs(directory, info)
        results.append(BatchLocateItem(point=point, grid=_grid(info), ancestors=refs))
    return BatchLocateOut(results=results, outside=sum(1 for f in found if f is None))
