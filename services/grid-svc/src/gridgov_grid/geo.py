"""Geometry helpers for grid boundaries: CRS conversion, GeoJSON parsing, checks, point lookup.

All geometries handled here are WGS-84 lon/lat (RFC 7946). Metric work (areas, tolerances)
is done in a small local projection, so only shapely + numpy are needed.
"""

from __future__ import annotations

import array
import math
import numbers
import os
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import shapely
from shapely import lib
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.geometry.polygon import orient
from shapely.validation import explain_validity

Polygonal: TypeAlias = Polygon | MultiPolygon

# --------------------------------------------------------------------------------------
# CRS conversion: WGS-84 / GCJ-02 ("Mars", Amap/Tencent) / BD-09 (Baidu)
# Written here rather than taken from PyPI: `coordtransform` only ships the one-step
# GCJ->WGS approximation (metre-level error) and `eviltransform` is unmaintained since 2018.
# --------------------------------------------------------------------------------------

_KRASOVSKY_A = 6378245.0  # GCJ-02 uses the Krasovsky 1940 ellipsoid
_KRASOVSKY_EE = 0.00669342162296594323
_X_PI = math.pi * 3000.0 / 180.0
_INVERSE_EPS_DEG = 1e-10  # ~0.01 mm; the inverse iterations stop below this step


def out_of_china(lon: float, lat: float) -> bool:
    """The standard GCJ-02 bounding-box rule: outside it GCJ-02 == WGS-84."""
    return not (72.004 <= lon <= 137.8347 and 0.8293 <= lat <= 55.8271)


def _gcj_offset(lon: float, lat: float) -> tuple[float, float]:
    """(dlon, dlat) in degrees that GCJ-02 adds to a WGS-84 point (the published formula)."""
    x, y = lon - 105.0, lat - 35.0
    common = (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2 / 3
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    dlat += common
    dlat += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2 / 3
    dlat += (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y * math.pi / 30.0)) * 2 / 3
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    dlon += common
    dlon += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2 / 3
    dlon += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2 / 3

    rad = math.radians(lat)
    magic = 1 - _KRASOVSKY_EE * math.sin(rad) ** 2
    sqrt_magic = math.sqrt(magic)
    dlat = dlat * 180.0 / ((_KRASOVSKY_A * (1 - _KRASOVSKY_EE)) / (magic * sqrt_magic) * math.pi)
    dlon = dlon * 180.0 / (_KRASOVSKY_A / sqrt_magic * math.cos(rad) * math.pi)
    return dlon, dlat


def _invert(
    forward: Callable[[float, float], tuple[float, float]], lon: float, lat: float
) -> tuple[float, float]:
    """Solve forward(p) == (lon, lat) by fixed-point iteration.

    Both shifts are tiny and smooth (derivative << 1), so each step cuts the error ~1000x;
    3-4 steps reach 1e-10 degrees where the one-step formula can be off by metres.
    """
    x, y = lon, lat
    for _ in range(20):
        fx, fy = forward(x, y)
        dx, dy = fx - lon, fy - lat
        x, y = x - dx, y - dy
        if abs(dx) < _INVERSE_EPS_DEG and abs(dy) < _INVERSE_EPS_DEG:
            break
    return x, y


def _wgs84_to_gcj02_unchecked(lon: float, lat: float) -> tuple[float, float]:
    dlon, dlat = _gcj_offset(lon, lat)
    return lon + dlon, lat + dlat


def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    if out_of_china(lon, lat):
        return lon, lat
    return _wgs84_to_gcj02_unchecked(lon, lat)


def gcj02_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    if out_of_china(lon, lat):
        return lon, lat
    # Iterate on the unchecked forward so points near the box edge do not flip-flop.
    return _invert(_wgs84_to_gcj02_unchecked, lon, lat)


def gcj02_to_bd09(lon: float, lat: float) -> tuple[float, float]:
    z = math.hypot(lon, lat) + 0.00002 * math.sin(lat * _X_PI)
    theta = math.atan2(lat, lon) + 0.000003 * math.cos(lon * _X_PI)
    return z * math.cos(theta) + 0.0065, z * math.sin(theta) + 0.006


def bd09_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    # Iterative inverse too: the usual closed-form "decrypt" is itself an approximation.
    return _invert(gcj02_to_bd09, lon, lat)


def wgs84_to_bd09(lon: float, lat: float) -> tuple[float, float]:
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def to_wgs84(lon: float, lat: float, crs: str) -> tuple[float, float]:
    """Convert a point from `crs` ("wgs84", "gcj02" or "bd09", case-insensitive) to WGS-84."""
    key = crs.lower()
    if key == "wgs84":
        return float(lon), float(lat)
    if key == "gcj02":
        return gcj02_to_wgs84(lon, lat)
    if key == "bd09":
        return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))
    raise ValueError(f"unknown CRS {crs!r}; expected 'wgs84', 'gcj02' or 'bd09'")


# --------------------------------------------------------------------------------------
# GeoJSON parsing and validation
# --------------------------------------------------------------------------------------

Location: TypeAlias = list[float] | str | None


class GeometryError(ValueError):
    """Rejected geometry. `location` is [lon, lat] of the problem or a path like
    "coordinates[0][1]" (polygon 0, ring 1 of a MultiPolygon) when no single point applies."""

    def __init__(self, detail: str, location: Location = None) -> None:
        self.detail = detail
        self.location = location
        super().__init__(detail if location is None else f"{detail} (at {location})")


# GEOS explain_validity reasons -> wording for end users.
_VALIDITY_TEXT = {
    "Self-intersection": "boundary crosses itself or parts overlap (self-intersection)",
    "Ring Self-intersection": "a ring touches itself (ring self-intersection)",
    "Hole lies outside shell": "a hole lies outside the exterior ring",
    "Nested holes": "a hole lies inside another hole",
    "Interior is disconnected": "holes split the polygon into disconnected pieces",
    "Nested shells": "one polygon of the MultiPolygon lies inside another",
    "Duplicate Rings": "a ring is repeated",
    "Too few points": "a ring has too few distinct points",
    "Invalid Coordinate": "a coordinate is not a finite number",
}
_REASON_POINT = re.compile(r"\[(\S+) (\S+)\]\s*$")


def _is_number(value: Any) -> bool:
    # bool is an int subclass; JSON true/false must not pass as coordinates.
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _parse_ring(ring: Any, path: str) -> list[tuple[float, float]]:
    if not isinstance(ring, list | tuple):
        raise GeometryError("a ring must be an array of [lon, lat] positions", path)
    points: list[tuple[float, float]] = []
    for i, pos in enumerate(ring):
        if (
            not isinstance(pos, list | tuple)
            or len(pos) not in (2, 3)  # optional altitude is allowed and dropped
            or not all(_is_number(v) for v in pos)
        ):
            raise GeometryError("a position must be [lon, lat] with finite numbers", f"{path}[{i}]")
        lon, lat = float(pos[0]), float(pos[1])
        if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
            hint = "; [lat, lon] order? GeoJSON is [lon, lat]" if abs(lon) <= 90 else ""
            raise GeometryError(
                f"coordinate out of range: lon must be in [-180, 180] and lat in [-90, 90] "
                f"(got lon={lon}, lat={lat}{hint})",
                [lon, lat],
            )
        points.append((lon, lat))
    if len(points) < 4:
        raise GeometryError(
            f"a ring needs at least 4 positions (first repeated as last), got {len(points)}", path
        )
    if points[0] != points[-1]:
        raise GeometryError(
            f"ring is not closed: first position {list(points[0])} differs from "
            f"last {list(points[-1])}",
            path,
        )
    return points


def _check_valid(geom: BaseGeometry, path: str) -> None:
    if geom.is_valid:
        return
    reason = explain_validity(geom)  # e.g. "Self-intersection[114.05 22.54]"
    match = _REASON_POINT.search(reason)
    location: Location = [float(match[1]), float(match[2])] if match else path
    kind = reason.split("[", 1)[0].strip()
    raise GeometryError(f"invalid polygon: {_VALIDITY_TEXT.get(kind, kind)}", location)


def _parse_polygon(rings: Any, path: str) -> Polygon:
    if not isinstance(rings, list | tuple) or not rings:
        raise GeometryError("a polygon needs at least an exterior ring", path)
    parsed = [_parse_ring(ring, f"{path}[{i}]") for i, ring in enumerate(rings)]
    polygon = Polygon(parsed[0], parsed[1:])
    _check_valid(polygon, path)
    # Wrong winding is harmless to fix; RFC 7946: exterior counter-clockwise, holes clockwise.
    return orient(polygon, sign=1.0)


def parse_geometry(geojson: dict[str, Any]) -> Polygonal:
    """Parse a GeoJSON Polygon/MultiPolygon (WGS-84) into a valid, RFC 7946-oriented geometry.

    Raises GeometryError for anything we would not want to store: other types, malformed or
    out-of-range coordinates, short or unclosed rings (never auto-closed: an unclosed ring
    usually means a truncated upload), and invalid topology (bowties, holes outside, ...).
    """
    if not isinstance(geojson, dict):
        raise GeometryError("geometry must be a GeoJSON object")
    gtype = geojson.get("type")
    coords = geojson.get("coordinates")
    if gtype == "Polygon":
        return _parse_polygon(coords, "coordinates")
    if gtype == "MultiPolygon":
        if not isinstance(coords, list | tuple) or not coords:
            raise GeometryError("a MultiPolygon needs at least one polygon", "coordinates")
        multi = MultiPolygon([_parse_polygon(p, f"coordinates[{i}]") for i, p in enumerate(coords)])
        _check_valid(multi, "coordinates")  # parts may still overlap each other
        return multi
    raise GeometryError(f"geometry type must be Polygon or MultiPolygon, got {gtype!r}", "type")


def _polygon_coords(polygon: Polygon) -> list[list[list[float]]]:
    rings = [polygon.exterior, *polygon.interiors]
    return [shapely.get_coordinates(ring).tolist() for ring in rings]


def to_geojson(geom: Polygonal) -> dict[str, Any]:
    """GeoJSON dict with RFC 7946 winding (exterior CCW, holes CW), 2-D positions."""
    if isinstance(geom, Polygon):
        return {"type": "Polygon", "coordinates": _polygon_coords(orient(geom, 1.0))}
    if isinstance(geom, MultiPolygon):
        parts = [_polygon_coords(orient(p, 1.0)) for p in geom.geoms]
        return {"type": "MultiPolygon", "coordinates": parts}
    raise TypeError(f"expected Polygon or MultiPolygon, got {geom.geom_type}")


# --------------------------------------------------------------------------------------
# Metric helpers (areas, tolerances)
# --------------------------------------------------------------------------------------

_WGS84_A = 6378137.0
_WGS84_E2 = 0.00669437999014
_CRUMB_M2 = 1e-3  # overlay round-off leaves sub-mm² crumbs; never report those


class _LocalProjection:
    """Sinusoidal-style projection around (lon0, lat0) using the WGS-84 radii of curvature there.

    x = dlon * N0 * cos(lat), y = dlat * M0. Scaling longitude by each vertex's own cos(lat)
    keeps it equal-area (exact on a sphere), so areas stay within ~0.01% over a district-sized
    area; lengths (tolerances) are good to ~0.2% within 25 km of lon0.
    """

    def __init__(self, lon0: float, lat0: float) -> None:
        w = 1.0 - _WGS84_E2 * math.sin(math.radians(lat0)) ** 2
        self.lon0, self.lat0 = lon0, lat0
        self.m_per_deg_lat = math.radians(1) * _WGS84_A * (1 - _WGS84_E2) / w**1.5
        self.m_per_deg_lon = math.radians(1) * _WGS84_A / math.sqrt(w)  # times cos(lat)

    @classmethod
    def around(cls, geom: BaseGeometry) -> _LocalProjection:
        minx, miny, maxx, maxy = geom.bounds
        return cls((minx + maxx) / 2, (miny + maxy) / 2)

    def _fwd(self, xy: np.ndarray) -> np.ndarray:
        lon, lat = xy[:, 0], xy[:, 1]
        x = (lon - self.lon0) * self.m_per_deg_lon * np.cos(np.radians(lat))
        y = (lat - self.lat0) * self.m_per_deg_lat
        return np.column_stack([x, y])

    def _inv(self, xy: np.ndarray) -> np.ndarray:
        lat = self.lat0 + xy[:, 1] / self.m_per_deg_lat
        lon = self.lon0 + xy[:, 0] / (self.m_per_deg_lon * np.cos(np.radians(lat)))
        return np.column_stack([lon, lat])

    def to_m(self, geom: Any) -> Any:
        return shapely.transform(geom, self._fwd)

    def to_deg(self, geom: Any) -> Any:
        return shapely.transform(geom, self._inv)


def area_m2(geom: BaseGeometry) -> float:
    """Approximate geodesic area in m² (local equal-area projection; ~0.01% for grid sizes)."""
    if geom.is_empty:
        return 0.0
    return float(_LocalProjection.around(geom).to_m(geom).area)


def _polygons(geom: BaseGeometry) -> list[Polygon]:
    if isinstance(geom, Polygon):
        return [] if geom.is_empty else [geom]
    if hasattr(geom, "geoms"):  # Multi* / GeometryCollection: overlays may mix in lines
        return [p for g in geom.geoms for p in _polygons(g)]
    return []


def _significant(
    geom_m: BaseGeometry,
    proj: _LocalProjection,
    *,
    tolerance_m: float = 0.0,
    min_area_m2: float = 0.0,
) -> Polygonal | None:
    """Keep the pieces of a metric-space result that matter; return them in lon/lat.

    A piece is kept when its area >= min_area_m2 and, if tolerance_m > 0, it is more than
    2 * tolerance_m wide somewhere (it survives an inward buffer of tolerance_m). The width
    rule is what removes long hairline slivers that a pure area threshold would keep.
    """
    kept = [
        p
        for p in _polygons(geom_m)
        if p.area > max(min_area_m2, _CRUMB_M2)
        and (tolerance_m <= 0 or not p.buffer(-tolerance_m).is_empty)
    ]
    if not kept:
        return None
    out = kept[0] if len(kept) == 1 else MultiPolygon(kept)
    return proj.to_deg(out)


def _check_tolerance(tolerance_m: float) -> None:
    if not tolerance_m >= 0:
        raise ValueError(f"tolerance_m must be >= 0, got {tolerance_m}")


def outside_part(
    child: Polygonal, parent: Polygonal, tolerance_m: float, *, min_area_m2: float = 0.0
) -> Polygonal | None:
    """Part of `child` lying more than `tolerance_m` metres outside `parent`, or None.

    The parent is grown by the tolerance (in metres, in the local projection, so the buffer
    is round on the ground rather than stretched east-west as a degree buffer would be).
    """
    _check_tolerance(tolerance_m)
    if parent.covers(child):
        return None
    proj = _LocalProjection.around(parent)
    allowed = proj.to_m(parent)
    if tolerance_m > 0:
        allowed = allowed.buffer(tolerance_m)
    return _significant(proj.to_m(child).difference(allowed), proj, min_area_m2=min_area_m2)


def overlap(
    a: Polygonal, b: Polygonal, tolerance_m: float, *, min_area_m2: float = 0.0
) -> Polygonal | None:
    """Pieces of a ∩ b that are real overlaps, or None.

    Rule: a piece counts when it is wider than 2 * tolerance_m somewhere (each of the two
    boundaries may be off by up to tolerance_m) and its area is at least min_area_m2.
    The exact intersection shape of each qualifying piece is returned.
    """
    _check_tolerance(tolerance_m)
    if not a.intersects(b):
        return None
    proj = _LocalProjection.around(a)
    inter = proj.to_m(a).intersection(proj.to_m(b))
    return _significant(inter, proj, tolerance_m=tolerance_m, min_area_m2=min_area_m2)


def uncovered(
    parent: Polygonal,
    children: Iterable[Polygonal],
    *,
    tolerance_m: float = 0.5,
    min_area_m2: float = 1.0,
) -> Polygonal | None:
    """Parent minus the union of its children, without slivers; None if fully covered.

    Same piece rule as `overlap`: gaps narrower than 2 * tolerance_m everywhere, or smaller
    than min_area_m2, are digitising noise and are dropped.
    """
    _check_tolerance(tolerance_m)
    proj = _LocalProjection.around(parent)
    kids = [c for c in children if not c.is_empty]
    gap = proj.to_m(parent)
    if kids:
        gap = gap.difference(shapely.union_all(proj.to_m(np.array(kids, dtype=object))))
    return _significant(gap, proj, tolerance_m=tolerance_m, min_area_m2=min_area_m2)


# --------------------------------------------------------------------------------------
# Point -> grid lookup
# --------------------------------------------------------------------------------------

_CHUNK = 65_536  # batch size per worker thread in locate_many
_MAX_WORKERS = min(4, os.cpu_count() or 1)


def _expand(start: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ranges [start, start + count): (which range, position) of every element."""
    owner = np.repeat(np.arange(count.size), count)
    first = np.cumsum(count) - count
    return owner, np.repeat(start, count) + (np.arange(owner.size) - first[owner])


@dataclass(frozen=True)
class _Buckets:
    """A uniform grid of cells over the indexed extent, listing for each cell the grids
    whose bounding box overlaps it (CSR: ``items[start[c]:start[c + 1]]``, ascending).

    Candidates come from here with arithmetic instead of a tree query: for a batch as numpy
    arrays, for a single point from ``array.array`` copies (a numpy or GEOS call costs
    microseconds of overhead, more than the arithmetic itself; compact arrays beat lists of
    Python ints and tuples on memory and cache misses alike).
    """

    x0: float
    y0: float
    x1: float
    y1: float
    dx: float
    dy: float
    side: int  # side x side cells
    start: np.ndarray
    items: np.ndarray
    bounds: np.ndarray  # (grids, 4): minx, miny, maxx, maxy
    # The same as compact Python arrays, for single lookups; boxes flat (4 per grid).
    start_1: array.array[int]
    items_1: array.array[int]
    bounds_1: array.array[float]

    @classmethod
    def build(cls, geoms: Sequence[Polygonal]) -> _Buckets:
        bounds = shapely.bounds(np.array(geoms, dtype=object)).reshape(-1, 4)
        n = len(bounds)
        side = max(1, math.ceil(math.sqrt(2 * n)))  # ~2 cells per grid
        x0, y0 = (float(bounds[:, 0].min()), float(bounds[:, 1].min())) if n else (0.0, 0.0)
        x1, y1 = (float(bounds[:, 2].max()), float(bounds[:, 3].max())) if n else (1.0, 1.0)
        dx, dy = (x1 - x0) / side or 1.0, (y1 - y0) / side or 1.0
        cx0, cy0 = _cells(x0, y0, dx, dy, side, bounds[:, 0], bounds[:, 1])
        cx1, cy1 = _cells(x0, y0, dx, dy, side, bounds[:, 2], bounds[:, 3])
        width = cx1 - cx0 + 1
        grid, k = _expand(np.zeros(n, np.intp), width * (cy1 - cy0 + 1))
        cell = (cy0[grid] + k // width[grid]) * side + cx0[grid] + k % width[grid]
        # By cell; stable, so within a cell grid indices (= code order) stay ascending.
        order = np.argsort(cell, kind="stable")
        start = np.searchsorted(cell[order], np.arange(side * side + 1))
        items = grid[order]
        return cls(
            x0, y0, x1, y1, dx, dy, side, start, items, bounds,
            array.array("q", start.astype(np.int64).tobytes()),
            array.array("i", items.astype(np.int32).tobytes()),
            array.array("d", bounds.astype(np.float64).tobytes()),
        )  # fmt: skip

    def candidates(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(point, grid) index pairs where the grid's bounding box holds the point."""
        cx, cy = _cells(self.x0, self.y0, self.dx, self.dy, self.side, x, y)
        cell = cy * self.side + cx
        point, at = _expand(self.start[cell], self.start[cell + 1] - self.start[cell])
        grid = self.items[at]
        box, px, py = self.bounds[grid], x[point], y[point]
        inside = (box[:, 0] <= px) & (px <= box[:, 2]) & (box[:, 1] <= py) & (py <= box[:, 3])
        return point[inside], grid[inside]

    def candidates_of(self, x: float, y: float) -> list[int]:
        """Grids whose bounding box holds one point, ascending."""
        if not (self.x0 <= x <= self.x1 and self.y0 <= y <= self.y1):  # also NaN
            return []
        top = self.side - 1
        c = min(int((y - self.y0) / self.dy), top) * self.side + min(
            int((x - self.x0) / self.dx), top
        )
        box = self.bounds_1
        found = []
        for i in self.items_1[self.start_1[c] : self.start_1[c + 1]]:
            k = 4 * i
            if box[k] <= x <= box[k + 2] and box[k + 1] <= y <= box[k + 3]:
                found.append(i)
        return found


def _cells(
    x0: float, y0: float, dx: float, dy: float, side: int, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    # Clipped to the grid (NaN to cell 0): such points then fail every box test.
    top = side - 1
    cx = np.nan_to_num(np.floor((x - x0) / dx), nan=0.0, posinf=top, neginf=0)
    cy = np.nan_to_num(np.floor((y - y0) / dy), nan=0.0, posinf=top, neginf=0)
    return np.clip(cx, 0, top).astype(np.intp), np.clip(cy, 0, top).astype(np.intp)


# Points closer than this to a boundary (degrees, ~0.1 mm) are decided by GEOS, not by the
# ray-crossing count, whose rounding error is some 1e-14 degrees.
_BOUNDARY_EPS = 1e-9


@dataclass(frozen=True)
class _Edges:
    """Every ring vertex of every grid as flat arrays (CSR by grid: ``start[g]:start[g + 1]``),
    for an even-odd ray-crossing test of many (point, grid) pairs in a few array operations.
    GEOS does the same test per pair, but builds a point for each, which is most of its cost.
    Holes and multipolygon parts need no special case: crossings of all rings are counted.
    Vertex i and i + 1 form an edge unless i ends its ring (``ring_end``)."""

    x: np.ndarray
    y: np.ndarray
    ring_end: np.ndarray
    start: np.ndarray

    @classmethod
    def build(cls, geoms: np.ndarray) -> _Edges:
        if not len(geoms):
            return cls(np.zeros(0), np.zeros(0), np.zeros(0, bool), np.zeros(1, np.intp))
        kind, coords, offsets = shapely.to_ragged_array(geoms)
        rings = offsets[0]  # coordinate offsets of the rings
        # Ring offsets of each grid: polygons map grids to rings directly, multipolygons
        # through their parts.
        by_grid = offsets[1] if kind == shapely.GeometryType.POLYGON else offsets[1][offsets[2]]
        ring_end = np.zeros(len(coords), bool)
        ring_end[rings[1:] - 1] = True
        return cls(coords[:, 0].copy(), coords[:, 1].copy(), ring_end, rings[by_grid])

    def intersects(
        self, geoms: np.ndarray, grid: np.ndarray, px: np.ndarray, py: np.ndarray
    ) -> np.ndarray:
        """Whether each point (px[i], py[i]) lies in or on grid[i]; same answers as GEOS."""
        pair, i = _expand(self.start[grid], self.start[grid + 1] - self.start[grid] - 1)
        edge = ~self.ring_end[i]
        pair, i = pair[edge], i[edge]
        qx, qy = px[pair], py[pair]
        x1, y1, x2, y2 = self.x[i], self.y[i], self.x[i + 1], self.y[i + 1]
        ex, ey = x2 - x1, y2 - y1
        straddles = (y1 > qy) != (y2 > qy)  # half-open, so a vertex is counted once
        with np.errstate(divide="ignore", invalid="ignore"):
            crosses = straddles & (qx < x1 + (qy - y1) * ex / ey)
        inside = np.bincount(pair, weights=crosses, minlength=grid.size).astype(np.intp) & 1 == 1
        eps = _BOUNDARY_EPS
        near = (
            (np.abs(ex * (qy - y1) - ey * (qx - x1)) <= eps * (np.abs(ex) + np.abs(ey)))
            & (np.minimum(x1, x2) - eps <= qx)
            & (qx <= np.maximum(x1, x2) + eps)
            & (np.minimum(y1, y2) - eps <= qy)
            & (qy <= np.maximum(y1, y2) + eps)
        )
        close = np.unique(pair[near])
        if close.size:
            inside[close] = shapely.intersects_xy(geoms[grid[close]], px[close], py[close])
        return inside


@dataclass(frozen=True)
class _Snapshot:
    """Immutable index state. Items are sorted by code, so index order == code order and
    "lowest code among matches" is just "lowest index"."""

    codes: np.ndarray  # object array of str, sorted, plus a trailing None (= "no match")
    geoms: list[Polygonal]  # same order; a list because scalar indexing is cheaper
    geom_array: np.ndarray  # the same as an object array, for vectorised predicates
    buckets: _Buckets
    edges: _Edges  # batched exact tests

    @classmethod
    def build(cls, items: dict[str, Polygonal]) -> _Snapshot:
        codes = sorted(items)
        geoms = [items[c] for c in codes]
        geom_array = np.array(geoms, dtype=object)
        return cls(
            np.array([*codes, None], dtype=object),
            geoms,
            geom_array,
            _Buckets.build(geoms),
            _Edges.build(geom_array),
        )


class GridIndex:
    """In-memory point -> grid code lookup: a cell grid of bounding boxes (`_Buckets`) gives
    the candidates, an exact point-in-polygon test decides.

    * A point on a shared edge/vertex matches every grid it touches (`intersects`); the
      lowest code wins, so the answer is deterministic.
    * Updates only touch a dict and mark the index dirty; the next query rebuilds the
      (immutable) snapshot under a lock. Bulk loads: use replace_all.
    * Readers grab one snapshot reference and use only that, so a query never sees a
      half-built index; rebuilds swap the reference atomically.
    * Geometries are deliberately not shapely.prepare()d: GEOS prepared geometries are not
      safe to share between threads, and for grid-sized polygons they gain little.
    """

    def __init__(self) -> None:
        self._geoms: dict[str, Polygonal] = {}
        self._lock = threading.Lock()
        self._snapshot = _Snapshot.build({})
        self._dirty = False

    def __len__(self) -> int:
        return len(self._geoms)

    def __contains__(self, code: object) -> bool:
        return code in self._geoms

    @staticmethod
    def _check(code: str, geom: Polygonal) -> None:
        if not isinstance(code, str) or not code:
            raise TypeError(f"grid code must be a non-empty str, got {code!r}")
        if not isinstance(geom, Polygon | MultiPolygon) or geom.is_empty:
            raise TypeError(f"grid {code}: geometry must be a non-empty Polygon or MultiPolygon")

    def replace_all(self, items: Iterable[tuple[str, Polygonal]]) -> None:
        geoms: dict[str, Polygonal] = {}
        for code, geom in items:
            self._check(code, geom)
            geoms[code] = geom
        snapshot = _Snapshot.build(geoms)  # built outside the lock; readers keep going
        with self._lock:
            self._geoms, self._snapshot, self._dirty = geoms, snapshot, False

    def upsert(self, code: str, geom: Polygonal) -> None:
        self._check(code, geom)
        with self._lock:
            self._geoms[code] = geom
            self._dirty = True

    def remove(self, code: str) -> bool:
        """Drop a grid; returns False if it was not indexed."""
        with self._lock:
            if self._geoms.pop(code, None) is None:
                return False
            self._dirty = True
            return True

    def _current(self) -> _Snapshot:
        if not self._dirty:
            return self._snapshot
        with self._lock:
            if self._dirty:  # another thread may have rebuilt while we waited
                self._snapshot = _Snapshot.build(self._geoms)  # publish before clearing flag
                self._dirty = False
            return self._snapshot

    def locate(self, lon: float, lat: float) -> str | None:
        """Code of the grid containing (lon, lat) (WGS-84), lowest code on ties, else None."""
        snap = self._current()
        for i in snap.buckets.candidates_of(lon, lat):  # ascending index == ascending code
            # shapely.lib directly: the public wrapper's argument handling costs more than
            # the test itself for one point.
            if lib.intersects_xy(snap.geoms[i], lon, lat):
                return str(snap.codes[i])
        return None

    def locate_many(
        self, lons: Sequence[float] | np.ndarray, lats: Sequence[float] | np.ndarray
    ) -> list[str | None]:
        """Vectorised `locate`; same answers. Large batches are split across a few threads
        (shapely releases the GIL inside its predicates)."""
        x = np.asarray(lons, dtype=float).ravel()
        y = np.asarray(lats, dtype=float).ravel()
        if x.shape != y.shape:
            raise ValueError(f"lons and lats differ in length ({x.size} != {y.size})")
        snap = self._current()
        no_match = len(snap.geoms)
        best = np.full(x.size, no_match, dtype=np.intp)

        def run(start: int) -> None:
            stop = min(start + _CHUNK, x.size)
            cx, cy = x[start:stop], y[start:stop]
            point_idx, grid_idx = snap.buckets.candidates(cx, cy)
            hit = snap.edges.intersects(snap.geom_array, grid_idx, cx[point_idx], cy[point_idx])
            # Several matches (shared edges, overlaps): keep the lowest index == lowest code.
            np.minimum.at(best[start:stop], point_idx[hit], grid_idx[hit])

        starts = range(0, x.size, _CHUNK)
        if len(starts) <= 1:
            for start in starts:
                run(start)
        else:
            workers = min(_MAX_WORKERS, len(starts))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(run, starts))  # list() re-raises worker exceptions
        return snap.codes[best].tolist()
