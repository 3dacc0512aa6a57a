import math
import random
import threading
from typing import Any

import numpy as np
import pytest
import shapely
from shapely.geometry import MultiPolygon, Polygon, box

from gridgov_grid import geo
from gridgov_grid.geo import (
    GeometryError,
    GridIndex,
    area_m2,
    bd09_to_gcj02,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    outside_part,
    overlap,
    parse_geometry,
    to_geojson,
    to_wgs84,
    uncovered,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Haversine distance between two (lon, lat) points."""
    lon1, lat1, lon2, lat2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371008.8 * math.asin(math.sqrt(h))


M = 1 / 111_320  # ~1 metre in degrees (latitude); good enough to build test shapes


# --- CRS ----------------------------------------------------------------------------------

SHENZHEN_WGS = (114.0579, 22.5431)
# Widely published vector (Hutool CoordinateUtilTest, wandergis/coordtransform tests).
BEIJING_WGS = (116.404, 39.915)
BEIJING_GCJ = (116.41024449916938, 39.91640428150164)
BEIJING_BD = (116.41662724378733, 39.922699552216216)


def test_gcj02_forward_matches_published_vector() -> None:
    lon, lat = wgs84_to_gcj02(*BEIJING_WGS)
    assert lon == pytest.approx(BEIJING_GCJ[0], abs=1e-9)
    assert lat == pytest.approx(BEIJING_GCJ[1], abs=1e-9)


def test_bd09_forward_matches_published_vector() -> None:
    lon, lat = wgs84_to_bd09(*BEIJING_WGS)
    assert lon == pytest.approx(BEIJING_BD[0], abs=1e-9)
    assert lat == pytest.approx(BEIJING_BD[1], abs=1e-9)
    assert gcj02_to_bd09(116.404, 39.915) == pytest.approx((116.41036949371029, 39.92133699351021))


def test_gcj02_published_pair_inverts_within_2m() -> None:
    assert distance_m(to_wgs84(*BEIJING_GCJ, "gcj02"), BEIJING_WGS) < 2.0


def test_gcj02_shenzhen_inverse_within_2m() -> None:
    gcj = wgs84_to_gcj02(*SHENZHEN_WGS)
    assert distance_m(gcj, SHENZHEN_WGS) > 100  # the offset is real (hundreds of metres)
    back = to_wgs84(*gcj, "gcj02")
    assert distance_m(back, SHENZHEN_WGS) < 2.0
    assert distance_m(back, SHENZHEN_WGS) < 0.01  # iterative inverse: effectively exact


def test_gcj02_inverse_accurate_across_china() -> None:
    rng = random.Random(7)
    worst = 0.0
    for _ in range(2000):
        wgs = (rng.uniform(75, 134), rng.uniform(18, 53))
        worst = max(worst, distance_m(gcj02_to_wgs84(*wgs84_to_gcj02(*wgs)), wgs))
    assert worst < 0.01


def test_bd09_round_trip() -> None:
    bd = wgs84_to_bd09(*SHENZHEN_WGS)
    assert distance_m(bd, SHENZHEN_WGS) > 100
    assert distance_m(to_wgs84(*bd, "BD09"), SHENZHEN_WGS) < 0.01
    gcj = wgs84_to_gcj02(*SHENZHEN_WGS)
    assert distance_m(bd09_to_gcj02(*gcj02_to_bd09(*gcj)), gcj) < 0.01


def test_outside_china_gcj_is_identity() -> None:
    paris = (2.3522, 48.8566)
    assert wgs84_to_gcj02(*paris) == paris
    assert to_wgs84(*paris, "gcj02") == paris


def test_wgs84_identity_and_unknown_crs() -> None:
    assert to_wgs84(*SHENZHEN_WGS, "wgs84") == SHENZHEN_WGS
    with pytest.raises(ValueError, match="unknown CRS"):
        to_wgs84(1.0, 2.0, "epsg:3857")


# --- parse_geometry / to_geojson ----------------------------------------------------------

X0, Y0 = 114.05, 22.54  # Shenzhen


def square(x: float, y: float, size: float, *, clockwise: bool = False) -> list[list[float]]:
    ring = [[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]
    return ring[::-1] if clockwise else ring


def polygon_json(*rings: list[list[Any]]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": list(rings)}


def test_parse_valid_polygon() -> None:
    geom = parse_geometry(polygon_json(square(X0, Y0, 0.01)))
    assert isinstance(geom, Polygon)
    assert geom.exterior.is_ccw
    assert geom.bounds == pytest.approx((X0, Y0, X0 + 0.01, Y0 + 0.01))


def test_bowtie_rejected_with_location() -> None:
    bowtie = [[X0, Y0], [X0 + 0.01, Y0 + 0.01], [X0 + 0.01, Y0], [X0, Y0 + 0.01], [X0, Y0]]
    with pytest.raises(GeometryError) as err:
        parse_geometry(polygon_json(bowtie))
    assert "self-intersection" in err.value.detail
    assert err.value.location == pytest.approx([X0 + 0.005, Y0 + 0.005])


def test_unclosed_ring_rejected_not_autoclosed() -> None:
    ring = square(X0, Y0, 0.01)[:-1]
    with pytest.raises(GeometryError, match="not closed") as err:
        parse_geometry(polygon_json(square(X0 - 1, Y0 - 1, 3), ring))
    assert err.value.location == "coordinates[1]"  # the hole is the broken ring


def test_too_few_positions() -> None:
    with pytest.raises(GeometryError, match="at least 4 positions") as err:
        parse_geometry(polygon_json([[X0, Y0], [X0 + 1, Y0], [X0, Y0]]))
    assert err.value.location == "coordinates[0]"


def test_clockwise_exterior_is_fixed() -> None:
    outer = square(X0, Y0, 0.01, clockwise=True)
    hole = square(X0 + 0.002, Y0 + 0.002, 0.002)  # counter-clockwise: also wrong
    geom = parse_geometry(polygon_json(outer, hole))
    assert geom.exterior.is_ccw
    assert not geom.interiors[0].is_ccw
    out = to_geojson(geom)
    assert out["type"] == "Polygon"
    assert Polygon(out["coordinates"][0]).exterior.is_ccw
    assert not shapely.LinearRing(out["coordinates"][1]).is_ccw


def test_to_geojson_fixes_winding_of_any_input() -> None:
    cw = Polygon(square(X0, Y0, 0.01, clockwise=True))
    assert not cw.exterior.is_ccw
    out = to_geojson(MultiPolygon([cw]))
    assert out["type"] == "MultiPolygon"
    assert shapely.LinearRing(out["coordinates"][0][0]).is_ccw
    assert parse_geometry(out).equals(cw)


@pytest.mark.parametrize(
    "position",
    [[181.0, 22.0], [-180.5, 22.0], [114.0, 90.5], [114.0, -91.0], [22.54, 114.05]],
)
def test_out_of_range_coordinates(position: list[float]) -> None:
    ring = [[0.0, 0.0], [1.0, 0.0], position, [0.0, 0.0]]
    with pytest.raises(GeometryError, match="out of range") as err:
        parse_geometry(polygon_json(ring))
    assert err.value.location == position


@pytest.mark.parametrize("bad", ["114.0", None, True, float("nan"), float("inf"), [1.0]])
def test_non_numeric_coordinates(bad: object) -> None:
    ring: list[list[Any]] = [[0.0, 0.0], [1.0, 0.0], [bad, 1.0], [0.0, 0.0]]
    with pytest.raises(GeometryError, match="finite numbers") as err:
        parse_geometry(polygon_json(ring))
    assert err.value.location == "coordinates[0][2]"


@pytest.mark.parametrize(
    "geojson",
    [
        {"type": "Point", "coordinates": [114.0, 22.0]},
        {"type": "LineString", "coordinates": [[114.0, 22.0], [114.1, 22.1]]},
        {"type": "Feature", "geometry": None},
        {"coordinates": []},
    ],
)
def test_wrong_type(geojson: dict) -> None:
    with pytest.raises(GeometryError, match="Polygon or MultiPolygon"):
        parse_geometry(geojson)


@pytest.mark.parametrize(
    "geojson",
    [
        {"type": "Polygon", "coordinates": []},
        {"type": "Polygon"},
        {"type": "Polygon", "coordinates": "nope"},
        {"type": "MultiPolygon", "coordinates": []},
        {"type": "Polygon", "coordinates": [[1, 2, 3, 4]]},
    ],
)
def test_malformed_structure(geojson: dict) -> None:
    with pytest.raises(GeometryError):
        parse_geometry(geojson)


def test_not_a_dict() -> None:
    with pytest.raises(GeometryError):
        parse_geometry([1, 2])  # type: ignore[arg-type]


def test_hole_outside_shell() -> None:
    with pytest.raises(GeometryError, match="hole lies outside") as err:
        parse_geometry(polygon_json(square(X0, Y0, 0.01), square(X0 + 1, Y0, 0.01)))
    assert isinstance(err.value.location, list)


def test_multipolygon_overlapping_parts_rejected() -> None:
    geojson = {
        "type": "MultiPolygon",
        "coordinates": [[square(X0, Y0, 0.02)], [square(X0 + 0.01, Y0 + 0.01, 0.02)]],
    }
    with pytest.raises(GeometryError, match="invalid polygon") as err:
        parse_geometry(geojson)
    assert isinstance(err.value.location, list)


def test_multipolygon_valid_and_part_errors_have_paths() -> None:
    parts = [[square(X0, Y0, 0.01, clockwise=True)], [square(X0 + 0.02, Y0, 0.01)]]
    geojson = {"type": "MultiPolygon", "coordinates": parts}
    geom = parse_geometry(geojson)
    assert isinstance(geom, MultiPolygon)
    assert all(p.exterior.is_ccw for p in geom.geoms)

    parts[1][0] = parts[1][0][:-1]
    with pytest.raises(GeometryError) as err:
        parse_geometry(geojson)
    assert err.value.location == "coordinates[1][0]"


def test_altitude_is_accepted_and_dropped() -> None:
    ring = [[*p, 10.0] for p in square(X0, Y0, 0.01)]
    geom = parse_geometry(polygon_json(ring))
    assert not geom.has_z
    assert len(to_geojson(geom)["coordinates"][0][0]) == 2


def test_geometry_error_is_value_error() -> None:
    err = GeometryError("bad", [1.0, 2.0])
    assert isinstance(err, ValueError)
    assert "bad" in str(err) and "[1.0, 2.0]" in str(err)


# --- metric helpers -----------------------------------------------------------------------


def test_area_m2() -> None:
    # Reference from pyproj Geod(ellps="WGS84"): 45564.5 m².
    assert area_m2(box(114.05, 22.54, 114.052, 22.542)) == pytest.approx(45564.5, rel=1e-3)
    assert area_m2(Polygon()) == 0.0


PARENT = box(X0, Y0, X0 + 200 * M, Y0 + 200 * M)


def test_outside_part_within_parent_or_tolerance() -> None:
    assert outside_part(box(X0 + 10 * M, Y0, X0 + 50 * M, Y0 + 50 * M), PARENT, 1.0) is None
    # Sticks out 0.5 m on the west: within a 1 m tolerance.
    child = box(X0 - 0.5 * M, Y0, X0 + 50 * M, Y0 + 50 * M)
    assert outside_part(child, PARENT, 1.0) is None


def test_outside_part_beyond_tolerance() -> None:
    child = box(X0 - 10 * M, Y0 + 10 * M, X0 + 50 * M, Y0 + 60 * M)  # ~10 m west x 50 m
    part = outside_part(child, PARENT, 1.0)
    assert part is not None
    assert part.bounds[2] < X0  # entirely west of the parent
    # Roughly (10 m - 1 m) x 50 m, with the lon scale at 22.5°N making it a bit smaller.
    assert 350 < area_m2(part) < 500
    assert outside_part(child, PARENT, 1.0, min_area_m2=1000) is None


def test_overlap_rules() -> None:
    a = box(X0, Y0, X0 + 100 * M, Y0 + 100 * M)
    neighbour = box(X0 + 100 * M, Y0, X0 + 200 * M, Y0 + 100 * M)
    assert overlap(a, neighbour, 0.5) is None  # shared edge only
    hairline = box(X0 + 99.7 * M, Y0, X0 + 200 * M, Y0 + 100 * M)  # 0.3 m x 100 m = ~28 m²
    assert overlap(a, hairline, 0.5) is None
    assert overlap(a, hairline, 0.0) is not None  # zero tolerance reports it
    deep = box(X0 + 80 * M, Y0, X0 + 200 * M, Y0 + 100 * M)  # 20 m x 100 m
    inter = overlap(a, deep, 0.5)
    assert inter is not None
    assert area_m2(inter) == pytest.approx(area_m2(a.intersection(deep)), rel=1e-6)
    assert overlap(a, deep, 0.5, min_area_m2=5000) is None
    assert overlap(a, box(X0 + 1, Y0, X0 + 2, Y0 + 1), 0.5) is None  # disjoint


def test_uncovered() -> None:
    half = 100 * M
    west = box(X0, Y0, X0 + half, Y0 + 200 * M)
    east = box(X0 + half, Y0, X0 + 200 * M, Y0 + 200 * M)
    assert uncovered(PARENT, [west, east]) is None
    # 0.2 m hairline gap between the halves: noise, dropped.
    east_gap = box(X0 + half + 0.2 * M, Y0, X0 + 200 * M, Y0 + 200 * M)
    assert uncovered(PARENT, [west, east_gap]) is None
    # Missing a 50 m x 50 m block in the east half.
    east_hole = east.difference(box(X0 + 120 * M, Y0 + 20 * M, X0 + 170 * M, Y0 + 70 * M))
    gap = uncovered(PARENT, [west, east_hole])
    assert gap is not None
    assert area_m2(gap) == pytest.approx(50 * 50 * math.cos(math.radians(Y0)), rel=0.02)
    assert uncovered(PARENT, []) is not None


def test_negative_tolerance_rejected() -> None:
    with pytest.raises(ValueError):
        outside_part(PARENT, PARENT, -1.0)


# --- GridIndex ----------------------------------------------------------------------------

S = 0.001  # grid cell size in degrees (~100 m)


def lattice(n: int = 10) -> list[tuple[str, Polygon]]:
    """n x n square grids sharing edges; codes increase west->east then south->north."""
    items = []
    for j in range(n):
        for i in range(n):
            code = f"440306001001{j * n + i + 1:03d}"
            items.append((code, box(X0 + i * S, Y0 + j * S, X0 + (i + 1) * S, Y0 + (j + 1) * S)))
    return items


def make_index(items: list[tuple[str, Polygon]] | None = None) -> GridIndex:
    index = GridIndex()
    index.replace_all(items if items is not None else lattice())
    return index


def test_locate_inside_and_outside() -> None:
    index = make_index()
    assert index.locate(X0 + 0.5 * S, Y0 + 0.5 * S) == "440306001001001"
    assert index.locate(X0 + 1.5 * S, Y0 + 0.5 * S) == "440306001001002"
    assert index.locate(X0 + 0.5 * S, Y0 + 1.5 * S) == "440306001001011"
    assert index.locate(X0 - 0.5 * S, Y0 + 0.5 * S) is None
    assert index.locate(0.0, 0.0) is None
    assert index.locate(float("nan"), Y0) is None


def test_shared_edge_and_vertex_get_lowest_code_every_time() -> None:
    items = lattice()
    edge = (X0 + S, Y0 + 0.5 * S)  # between 001 and 002
    vertex = (X0 + S, Y0 + S)  # corner of 001, 002, 011, 012
    for attempt in range(20):
        random.Random(attempt).shuffle(items)  # insertion order must not matter
        index = make_index(items)
        assert index.locate(*edge) == "440306001001001"
        assert index.locate(*vertex) == "440306001001001"
        assert index.locate_many([edge[0], vertex[0]], [edge[1], vertex[1]]) == [
            "440306001001001",
            "440306001001001",
        ]


def test_outer_boundary_counts_as_inside() -> None:
    index = make_index()
    assert index.locate(X0, Y0 + 0.5 * S) == "440306001001001"


def test_upsert_and_remove_change_answers() -> None:
    index = make_index()
    p = (X0 + 0.5 * S, Y0 + 0.5 * S)
    assert index.locate(*p) == "440306001001001"
    index.remove("440306001001001")
    assert index.locate(*p) is None
    assert index.remove("440306001001001") is False
    # Re-add it somewhere else: the old spot stays empty, the new spot answers.
    index.upsert("440306001001001", box(X0 - S, Y0, X0, Y0 + S))
    assert index.locate(*p) is None
    assert index.locate(X0 - 0.5 * S, Y0 + 0.5 * S) == "440306001001001"
    # A new grid overlapping an existing one: lowest code wins.
    index.upsert("440306001001000", box(X0 + S, Y0, X0 + 2 * S, Y0 + S))
    assert index.locate(X0 + 1.5 * S, Y0 + 0.5 * S) == "440306001001000"
    assert index.locate_many([X0 + 1.5 * S], [Y0 + 0.5 * S]) == ["440306001001000"]
    assert len(index) == 101 and "440306001001000" in index


def test_empty_index() -> None:
    index = GridIndex()
    assert index.locate(X0, Y0) is None
    assert index.locate_many([X0, X0 + 1], [Y0, Y0]) == [None, None]
    assert index.locate_many([], []) == []
    index.upsert("440306001001001", box(X0, Y0, X0 + S, Y0 + S))
    assert index.locate(X0 + S / 2, Y0 + S / 2) == "440306001001001"
    index.replace_all([])
    assert index.locate(X0 + S / 2, Y0 + S / 2) is None


def test_locate_many_equals_locate_for_random_points() -> None:
    items = lattice()
    # An irregular, overlapping grid with a hole, plus a MultiPolygon.
    items.append(("440306001001500", box(X0 + 2.5 * S, Y0 + 2.5 * S, X0 + 4.5 * S, Y0 + 4.5 * S)))
    multi = MultiPolygon([box(X0 + 7.2 * S, Y0, X0 + 7.8 * S, Y0 + S), box(X0 - S, Y0, X0, Y0 + S)])
    items.append(("440306001001000", multi))
    index = make_index(items)
    rng = np.random.default_rng(3)
    lons = rng.uniform(X0 - 2 * S, X0 + 12 * S, 5000)
    lats = rng.uniform(Y0 - 2 * S, Y0 + 12 * S, 5000)
    # Exact edge and vertex positions too.
    lons = np.concatenate([lons, X0 + rng.integers(0, 11, 500) * S])
    lats = np.concatenate([lats, Y0 + rng.integers(0, 11, 500) * S])
    batch = index.locate_many(lons, lats)
    assert batch == [index.locate(x, y) for x, y in zip(lons.tolist(), lats.tolist(), strict=True)]
    assert any(c is None for c in batch) and any(c == "440306001001000" for c in batch)


def test_both_lookups_agree_with_geos_on_irregular_grids_and_their_boundaries() -> None:
    """The batched ray-crossing count and the single-point path against a brute-force GEOS
    reference: irregular polygons, one with a hole, a multipolygon, and query points exactly
    on vertices, on edge midpoints and a hair (1e-12°) either side of edges."""
    rng = np.random.default_rng(11)
    seeds = shapely.MultiPoint(rng.uniform([X0, Y0], [X0 + 10 * S, Y0 + 10 * S], (40, 2)))
    cells = shapely.get_parts(
        shapely.voronoi_polygons(seeds, extend_to=box(X0, Y0, X0 + 10 * S, Y0 + 10 * S))
    )
    frame = box(X0, Y0, X0 + 10 * S, Y0 + 10 * S)
    geoms = [c.intersection(frame) for c in cells]
    geoms[0] = geoms[0].difference(geoms[0].centroid.buffer(S / 4))  # a hole
    geoms[1] = MultiPolygon([geoms[1], box(X0 - 2 * S, Y0, X0 - S, Y0 + S)])
    items = [(f"440306001001{i + 1:03d}", g) for i, g in enumerate(geoms)]
    index = make_index(items)
    coords = shapely.get_coordinates(np.array(geoms, dtype=object))
    mids = (coords[:-1] + coords[1:]) / 2
    points = np.concatenate(
        [
            rng.uniform([X0 - 2 * S, Y0 - S], [X0 + 11 * S, Y0 + 11 * S], (3000, 2)),
            coords,
            mids,
            mids + 1e-12,
            mids - 1e-12,
        ]
    )
    x, y = points[:, 0], points[:, 1]
    codes = np.array([code for code, _ in items] + [None], dtype=object)
    hits = shapely.intersects_xy(np.array(geoms, dtype=object)[:, None], x, y)  # grids x points
    first = np.where(hits.any(axis=0), hits.argmax(axis=0), len(geoms))
    expected = codes[first].tolist()
    assert index.locate_many(x, y) == expected
    assert [index.locate(a, b) for a, b in zip(x.tolist(), y.tolist(), strict=True)] == expected
    assert any(c is None for c in expected)


def test_locate_many_large_batch_uses_chunks() -> None:
    index = make_index()
    n = geo._CHUNK * 2 + 7  # several chunks -> thread-pool path
    rng = np.random.default_rng(5)
    lons = rng.uniform(X0 - S, X0 + 11 * S, n)
    lats = rng.uniform(Y0 - S, Y0 + 11 * S, n)
    batch = index.locate_many(lons, lats)
    assert len(batch) == n
    sample = rng.integers(0, n, 300)
    assert [batch[i] for i in sample] == [index.locate(lons[i], lats[i]) for i in sample]


def test_locate_many_outside_the_extent_and_on_an_empty_index() -> None:
    lons = [X0 - 50 * S, X0 + 50 * S, float("nan"), X0 + 0.5 * S]
    lats = [Y0 + 0.5 * S, Y0 + 0.5 * S, Y0, Y0 + 0.5 * S]
    assert make_index().locate_many(lons, lats) == [None, None, None, "440306001001001"]
    assert make_index([]).locate_many(lons, lats) == [None] * 4


def test_locate_many_length_mismatch() -> None:
    with pytest.raises(ValueError, match="differ"):
        make_index().locate_many([1.0, 2.0], [1.0])


def test_bad_items_rejected() -> None:
    index = GridIndex()
    with pytest.raises(TypeError):
        index.upsert("440306001001001", shapely.Point(X0, Y0))
    with pytest.raises(TypeError):
        index.replace_all([("", box(0, 0, 1, 1))])


def test_concurrent_queries_during_updates() -> None:
    index = make_index()
    p = (X0 + 0.5 * S, Y0 + 0.5 * S)
    allowed = {"440306001001001", None}
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                assert index.locate(*p) in allowed
                assert index.locate_many([p[0]], [p[1]])[0] in allowed
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for _ in range(30):
        index.remove("440306001001001")
        index.upsert("440306001001001", box(X0, Y0, X0 + S, Y0 + S))
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert index.locate(*p) == "440306001001001"
