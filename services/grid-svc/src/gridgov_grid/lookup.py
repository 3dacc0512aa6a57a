"""Point → grid lookup, served from the in-memory index (no database on the hot path).

Answers are JSON bytes shaped as ``LocateOut`` / ``BatchLocateOut``: the grid and its ancestor
chain are encoded once per grid and kept in the directory until it changes, so a lookup only
encodes its point. Building and validating the nested models on every request cost more
than the lookup itself.
"""

from __future__ import annotations

import asyncio

from pydantic import TypeAdapter
from pydantic_core import to_json

from gridgov_common.errors import Problem, invalid

from . import geo
from .directory import Directory, RegionInfo
from .schemas import LocatedGrid, RegionRef

# Batches this large are resolved in a worker thread so the event loop keeps serving.
_THREAD_THRESHOLD = 2_000
_REFS = TypeAdapter(list[RegionRef])
_NO_GRID = b'"grid":null,"ancestors":[]}'


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


def _located(directory: Directory, info: RegionInfo) -> bytes:
    """``"grid":{…},"ancestors":[…]}``: the end of an answer for a point in this grid."""
    encoded = directory.answers.get(info.code)
    if encoded is None:
        grid, refs = to_json(_grid(info)), _REFS.dump_json(_refs(directory, info))
        encoded = directory.answers[info.code] = b'"grid":%b,"ancestors":%b}' % (grid, refs)
    return encoded


def _answer(point: tuple[float, float], located: bytes) -> bytes:
    return b'{"point":%b,%b' % (to_json(point), located)


def locate(directory: Directory, lon: float, lat: float, crs: str) -> bytes:
    """The grid containing a point, as the JSON of a ``LocateOut``."""
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
    return _answer((wlon, wlat), _located(directory, info))


async def locate_batch(
    directory: Directory, points: list[tuple[float, float]], crs: str, limit: int
) -> bytes:
    """Many points at once, as the JSON of a ``BatchLocateOut`` (results in input order)."""
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
    results = [
        _answer(point, _NO_GRID if info is None else _located(directory, info))
        for point, info in zip(converted, found, strict=True)
    ]
    outside = sum(1 for f in found if f is None)
    return b'{"results":[%b],"outside":%d}' % (b",".join(results), outside)
