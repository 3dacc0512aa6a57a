"""grid-svc point → grid lookup: in-process index, HTTP API, and PostGIS / bare-FastAPI baselines.

    .venv/bin/python -m bench.grid_locate [--grids 100000] [--quick]

Prints one JSON object on stdout (progress on stderr). Steps, all in one run:

1. A seeded synthetic city: district 440306 → 10 streets → communities → grids, each level a
   Voronoi tiling (irregular convex polygons) of its parent, so every grid lies inside its
   community and the grids cover the district. Grid segments are 001–999 (codes.py), so a
   community holds at most 999 grids: 100,000 grids are 10 streets × 20 communities × 500.
2. In-process ``GridIndex``: build time and memory (a fresh child process loading the WKB,
   RSS from /proc), lookups one point at a time (with per-lookup p50/p99) and batched
   (``locate_many``, 10,000 points per call).
3. The real grid-svc under uvicorn on a SQLite file holding the city, with a Tansu broker:
   ``GET /v1/locate`` at concurrency 32 (bounded in count and time) and
   ``POST /v1/locate/batch`` with 10,000 points.
4. Baselines: a bare FastAPI app (bench/bare_app.py) on the same uvicorn options and load,
   driven in rounds alternating with grid-svc so background load on a shared machine hits
   both alike (per-round figures are in the output). PostGIS ``ST_Contains`` /
   ``ST_Intersects`` with a GiST index, one point per query over one asyncpg connection, and
   10,000 points in one statement, when PostgreSQL is reachable (database ``gg_bench_locate``,
   dropped afterwards).
5. Targets from issue 3 with a pass flag each.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import math
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Polygon

from bench.harness import (
    ROOT,
    UVICORN_OPTIONS,
    LoadResult,
    UvicornProcess,
    check,
    combine,
    emit,
    http_get,
    http_load,
    latency_summary,
    log,
    process_cpu_seconds,
    rss_bytes,
    run,
    terminate_on_sigterm,
)

DISTRICT = "440306"
DISTRICT_BOX = (113.75, 22.55, 114.25, 23.05)  # 0.5° × 0.5°, WGS-84
STREETS = 10
MAX_GRIDS_PER_COMMUNITY = 999  # grid segment 001–999
MAX_COMMUNITIES_PER_STREET = 199  # residents' committees 001–199
BATCH = 10_000
HTTP_ROUNDS = 4  # locate and bare are driven in alternating rounds
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_DATABASE = "gg_bench_locate"

TARGETS = {
    "single_lookups_per_s": 100_000,
    "batched_lookups_per_s": 400_000,
    "vs_postgis": 15.0,
    "http_vs_bare": 0.8,
}


@dataclass(frozen=True)
class Profile:
    grids: int
    single_lookups: int  # one-at-a-time lookups (timed twice: throughput, then latency)
    batched_lookups: int  # in batches of BATCH
    http_requests: int
    http_seconds: float
    http_warmup: int
    batch_runs: int
    postgis_lookups: int
    postgis_seconds: float
    postgis_batch_runs: int


FULL = Profile(100_000, 200_000, 1_000_000, 20_000, 30.0, 1_000, 10, 20_000, 10.0, 3)
QUICK = Profile(10_000, 50_000, 200_000, 5_000, 10.0, 500, 5, 3_000, 5.0, 2)


# --------------------------------------------------------------------------------------------
# Synthetic city
# --------------------------------------------------------------------------------------------


@dataclass
class City:
    rows: list[dict[str, Any]] = field(default_factory=list)  # Region rows, parents first
    grid_codes: list[str] = field(default_factory=list)
    grid_geoms: list[Polygon] = field(default_factory=list)
    communities: int = 0


def _seeds(region: Polygon, n: int, rng: np.random.Generator) -> np.ndarray:
    """n uniform random points strictly inside ``region`` (rejection sampling)."""
    minx, miny, maxx, maxy = region.bounds
    points = np.empty((0, 2))
    while len(points) < n:
        candidates = rng.uniform((minx, miny), (maxx, maxy), size=(max(2 * n, 16), 2))
        inside = shapely.contains_xy(region, candidates[:, 0], candidates[:, 1])
        points = np.concatenate([points, candidates[inside]])[:n]
    return points


def _split(region: Polygon, n: int, rng: np.random.Generator) -> list[Polygon]:
    """Tile ``region`` with n irregular cells: the Voronoi diagram of n random points in it."""
    if n == 1:
        return [region]
    seeds = _seeds(region, n, rng)
    diagram = shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=region, ordered=True)
    cells = shapely.intersection(shapely.get_parts(diagram), region)
    out: list[Polygon] = []
    for cell in cells:
        if not isinstance(cell, Polygon):  # round-off crumbs: keep the real piece
            cell = max(shapely.get_parts(cell), key=lambda g: g.area)
        out.append(cell)
    return out


def communities_per_street(grids: int) -> int:
    per_street = 10
    while math.ceil(grids / (STREETS * per_street)) > MAX_GRIDS_PER_COMMUNITY:
        per_street *= 2
    if per_street > MAX_COMMUNITIES_PER_STREET:
        raise SystemExit(f"--grids {grids} does not fit the code scheme")
    return per_street


def build_city(grids: int, seed: int) -> City:
    rng = np.random.default_rng(seed)
    per_street = communities_per_street(grids)
    n_communities = STREETS * per_street
    counts = [grids // n_communities + (i < grids % n_communities) for i in range(n_communities)]
    classes = np.array(["enhanced", "key", "regular"])
    city = City(communities=n_communities)

    def row(code: str, level: str, name: str, parent: str | None, geom: Polygon, **kw: Any) -> None:
        city.rows.append(
            {
                "code": code,
                "level": level,
                "name": name,
                "parent_code": parent,
                "boundary": geom,
                "kind": None,
                "grid_class": None,
                "households": None,
                "residents": None,
                **kw,
            }
        )

    district = shapely.box(*DISTRICT_BOX)
    row(DISTRICT, "district", "Bench District", None, district)
    k = 0
    for s, street in enumerate(_split(district, STREETS, rng), start=1):
        street_code = f"{DISTRICT}{s:03d}"
        row(street_code, "street", f"Street {s:03d}", DISTRICT, street, kind="subdistrict")
        for c, community in enumerate(_split(street, per_street, rng), start=1):
            community_code = f"{street_code}{c:03d}"
            row(
                community_code,
                "community",
                f"Community {s:03d}-{c:03d}",
                street_code,
                community,
                kind="residents_committee",
            )
            cells = _split(community, counts[k], rng)
            k += 1
            grid_class = rng.choice(classes, size=len(cells), p=[0.1, 0.2, 0.7])
            households = rng.integers(80, 600, size=len(cells))
            for g, cell in enumerate(cells, start=1):
                code = f"{community_code}{g:03d}"
                row(
                    code,
                    "grid",
                    f"Grid {code}",
                    community_code,
                    cell,
                    grid_class=str(grid_class[g - 1]),
                    households=int(households[g - 1]),
                    residents=int(households[g - 1] * 2.7),
                )
                city.grid_codes.append(code)
                city.grid_geoms.append(cell)
    return city


def random_points(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    minx, miny, maxx, maxy = DISTRICT_BOX
    return rng.uniform(minx, maxx, n), rng.uniform(miny, maxy, n)


# --------------------------------------------------------------------------------------------
# In-process index
# --------------------------------------------------------------------------------------------


def bench_in_process(
    city: City, profile: Profile, xs: np.ndarray, ys: np.ndarray, rng: np.random.Generator
) -> tuple[dict[str, Any], Any, list[str | None]]:
    from gridgov_grid.geo import GridIndex

    gc.collect()
    index = GridIndex()
    started = time.perf_counter()
    index.replace_all(zip(city.grid_codes, city.grid_geoms, strict=True))
    build_s = time.perf_counter() - started
    log(f"index built in {build_s:.3f}s")

    lons, lats = xs.tolist(), ys.tolist()
    locate = index.locate
    for x, y in zip(lons[:2000], lats[:2000], strict=True):  # warm-up
        locate(x, y)
    started = time.perf_counter()
    answers = [locate(x, y) for x, y in zip(lons, lats, strict=True)]
    single_s = time.perf_counter() - started
    log(f"one at a time: {len(lons) / single_s:,.0f} lookups/s")

    clock = time.perf_counter_ns
    latencies = []
    for x, y in zip(lons, lats, strict=True):
        t0 = clock()
        locate(x, y)
        latencies.append((clock() - t0) * 1e-9)

    bx, by = random_points(profile.batched_lookups, rng)
    index.locate_many(bx[:BATCH], by[:BATCH])  # warm-up
    batch_times = []
    for start in range(0, bx.size, BATCH):
        b0 = time.perf_counter()
        index.locate_many(bx[start : start + BATCH], by[start : start + BATCH])
        batch_times.append(time.perf_counter() - b0)
    batched_rps = bx.size / sum(batch_times)
    log(f"batched: {batched_rps:,.0f} lookups/s")

    many = index.locate_many(xs, ys)
    result = {
        "build_s": build_s,
        "single": {
            "lookups": len(lons),
            "lookups_per_s": len(lons) / single_s,
            "latency_us": latency_summary(latencies, 1e6),
        },
        "batched": {
            "batch_size": BATCH,
            "lookups": int(bx.size),
            "lookups_per_s": batched_rps,
            "batch_latency_ms": latency_summary(batch_times),
        },
        "outside_any_grid": answers.count(None),
        "single_vs_batched_mismatches": sum(a != b for a, b in zip(answers, many, strict=True)),
    }
    return result, index, answers


def probe_memory(db_path: str) -> None:
    """Child process: RSS of the index's geometries and lookup structures, from the WKB."""
    from gridgov_grid.geo import GridIndex

    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        rows = conn.execute(
            "SELECT code, boundary FROM regions WHERE level = 'grid' AND status = 'active'"
        ).fetchall()
    codes = [r[0] for r in rows]
    wkb = np.array([r[1] for r in rows], dtype=object)
    del rows
    gc.collect()
    rss0 = rss_bytes()
    geoms = shapely.from_wkb(wkb)
    gc.collect()
    rss1 = rss_bytes()
    index = GridIndex()
    started = time.perf_counter()
    index.replace_all(zip(codes, geoms, strict=True))
    build_s = time.perf_counter() - started
    gc.collect()
    rss2 = rss_bytes()
    mb = 1 / 2**20
    print(
        json.dumps(
            {
                "grids": len(index),
                "geometries_mb": (rss1 - rss0) * mb,
                "index_mb": (rss2 - rss1) * mb,
                "total_mb": (rss2 - rss0) * mb,
                "bytes_per_grid": (rss2 - rss0) / max(1, len(index)),
                "cold_build_s": build_s,
                "method": "RSS delta (/proc/self/statm) in a fresh process: WKB -> shapely "
                "geometries -> GridIndex.replace_all",
            }
        )
    )


def measure_memory(db_path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.grid_locate", "--probe-memory", str(db_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


# --------------------------------------------------------------------------------------------
# SQLite file for the service
# --------------------------------------------------------------------------------------------


def write_sqlite(city: City, path: Path) -> dict[str, Any]:
    from sqlalchemy import create_engine, insert

    from gridgov_grid.models import Base, Region

    started = time.perf_counter()
    engine = create_engine(f"sqlite:///{path}")
    try:
        Base.metadata.create_all(engine)
        now = datetime.now(UTC)
        extra = {"status": "active", "version": 1, "replaced_by": [], "created_at": now}
        rows = [{**r, **extra, "updated_at": now} for r in city.rows]
        with engine.begin() as conn:
            conn.execute(insert(Region.__table__), rows)  # executemany; WKB via Geometry type
    finally:
        engine.dispose()
    return {"rows": len(city.rows), "write_s": time.perf_counter() - started}


# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------


def locate_requests(port: int, xs: np.ndarray, ys: np.ndarray, token: str) -> list[bytes]:
    auth = {"Authorization": f"Bearer {token}"}
    return [
        http_get(f"/v1/locate?lon={x!r}&lat={y!r}", port, auth)
        for x, y in zip(xs.tolist(), ys.tolist(), strict=True)
    ]


async def interleaved(
    servers: dict[str, tuple[UvicornProcess, list[bytes]]],
    profile: Profile,
    concurrency: int,
    rounds: int,
) -> tuple[dict[str, LoadResult], dict[str, list[float]], dict[str, float]]:
    """Warm every server up, then drive them in alternating rounds (A, B, A, B, ...) so a
    change in background load on the machine hits both sides alike; rounds are combined.
    Also returns each server's CPU time per completed request (µs), which other work on a
    shared machine disturbs much less than requests per second."""
    for server, requests in servers.values():
        await http_load(
            server.port,
            requests,
            concurrency=concurrency,
            max_requests=profile.http_warmup,
            max_seconds=5,
        )
    parts: dict[str, list[LoadResult]] = {name: [] for name in servers}
    cpu = dict.fromkeys(servers, 0.0)
    for _ in range(rounds):
        for name, (server, requests) in servers.items():
            assert server.process is not None
            pid = server.process.pid
            before = process_cpu_seconds(pid)
            parts[name].append(
                await http_load(
                    server.port,
                    requests,
                    concurrency=concurrency,
                    max_requests=math.ceil(profile.http_requests / rounds),
                    max_seconds=profile.http_seconds / rounds,
                )
            )
            cpu[name] += process_cpu_seconds(pid) - before
    combined = {name: combine(results) for name, results in parts.items()}
    per_round = {name: [r.requests_per_s for r in results] for name, results in parts.items()}
    cpu_us = {name: 1e6 * cpu[name] / combined[name].completed for name in servers}
    return combined, per_round, cpu_us


async def check_answers(
    url: str, token: str, xs: np.ndarray, ys: np.ndarray, expected: list[str | None]
) -> int:
    """GET /v1/locate for a sample of points; count answers that differ from in-process."""
    import httpx

    mismatches = 0
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        for x, y, want in zip(xs.tolist(), ys.tolist(), expected, strict=True):
            response = await client.get("/v1/locate", params={"lon": repr(x), "lat": repr(y)})
            got = response.json()["grid"]["code"] if response.status_code == 200 else None
            if response.status_code not in (200, 404) or got != want:
                mismatches += 1
    return mismatches


async def bench_batch(
    url: str, token: str, xs: np.ndarray, ys: np.ndarray, expected: list[str | None], runs: int
) -> dict[str, Any]:
    import httpx

    body = json.dumps({"points": [[x, y] for x, y in zip(xs.tolist(), ys.tolist(), strict=True)]})
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as client:
        first = await client.post("/v1/locate/batch", content=body)  # warm-up + correctness
        first.raise_for_status()
        payload = first.json()
        got = [item["grid"]["code"] if item["grid"] else None for item in payload["results"]]
        mismatches = sum(a != b for a, b in zip(got, expected, strict=True))
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            response = await client.post("/v1/locate/batch", content=body)
            await response.aread()
            times.append(time.perf_counter() - t0)
            response.raise_for_status()
    summary = latency_summary(times)
    return {
        "points": len(expected),
        "runs": runs,
        "request_bytes": len(body),
        "response_bytes": len(first.content),
        "latency_ms": summary,
        "points_per_s_at_p50": len(expected) / (summary["p50"] / 1e3),
        "answer_mismatches": mismatches,
    }


def bench_http(
    tmp: Path,
    db_path: Path,
    stack: contextlib.ExitStack,
    profile: Profile,
    concurrency: int,
    xs: np.ndarray,
    ys: np.ndarray,
    answers: list[str | None],
) -> dict[str, Any]:
    from gridgov_common.auth import issue_token
    from gridgov_common.settings import ServiceSettings
    from gridgov_common.testing import Broker

    broker = Broker(log_path=tmp / "tansu.log", partitions=1).start()
    stack.callback(broker.stop)
    env = {
        "GRIDGOV_DATABASE_URL": f"sqlite+aiosqlite:///{db_path}",
        "GRIDGOV_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "GRIDGOV_LOG_LEVEL": "WARNING",
        "GRIDGOV_TOPIC_PARTITIONS": "1",
    }
    token = issue_token(ServiceSettings(), subject="bench", roles=["admin"], scopes=["*"])
    n_req = 4096  # distinct points cycled by the load generator

    log("starting grid-svc (loads the city from SQLite)…")
    grid = UvicornProcess(
        "gridgov_grid.main:app", env=env, log_path=tmp / "grid-svc.log", ready_timeout=300
    )
    stack.callback(grid.stop)
    grid.start().wait_ready()
    log(f"grid-svc ready on :{grid.port} after {grid.startup_s:.1f}s; starting the bare app…")
    bare = UvicornProcess("bench.bare_app:app", log_path=tmp / "bare.log")
    stack.callback(bare.stop)
    bare.start().wait_ready()

    sample = 200
    mismatches = run(check_answers(grid.url, token, xs[:sample], ys[:sample], answers[:sample]))
    servers = {
        "locate": (grid, locate_requests(grid.port, xs[:n_req], ys[:n_req], token)),
        "bare": (bare, locate_requests(bare.port, xs[:n_req], ys[:n_req], token)),
    }
    log(f"GET /v1/locate vs bare endpoint, {HTTP_ROUNDS} alternating rounds…")
    loads, per_round, cpu_us = run(interleaved(servers, profile, concurrency, HTTP_ROUNDS))
    locate, bare_load = loads["locate"], loads["bare"]
    log(f"GET /v1/locate: {locate.requests_per_s:,.0f} req/s, {locate.errors} errors")
    log(f"bare endpoint: {bare_load.requests_per_s:,.0f} req/s, {bare_load.errors} errors")
    bare_rss = bare.rss_bytes()
    bare.stop()

    batch = run(
        bench_batch(grid.url, token, xs[:BATCH], ys[:BATCH], answers[:BATCH], profile.batch_runs)
    )
    log(f"POST /v1/locate/batch ({BATCH} points): p50 {batch['latency_ms']['p50']:.0f} ms")
    service_rss = grid.rss_bytes()
    grid.stop()

    summaries = {}
    for name, load in loads.items():
        summary = load.summary()
        summary["non_200"] = load.completed - load.statuses.get(200, 0)
        summary["requests_per_s_by_round"] = per_round[name]
        summary["server_cpu_us_per_request"] = cpu_us[name]
        summaries[name] = summary
    summaries["locate"]["answer_mismatches"] = {"checked": sample, "mismatches": mismatches}
    return {
        "server": {
            "uvicorn_options": " ".join(UVICORN_OPTIONS),
            "grid_svc_startup_s": grid.startup_s,
            "grid_svc_rss_mb": service_rss / 2**20,
            "bare_rss_mb": bare_rss / 2**20,
        },
        "locate": summaries["locate"],
        "locate_batch": batch,
        "bare": summaries["bare"],
        "locate_vs_bare": locate.requests_per_s / bare_load.requests_per_s,
        # The same comparison by server CPU time per request (bare's over locate's).
        "locate_vs_bare_by_cpu": cpu_us["bare"] / cpu_us["locate"],
    }


# --------------------------------------------------------------------------------------------
# PostGIS baseline
# --------------------------------------------------------------------------------------------

_PG_SINGLE = {
    "st_contains": "SELECT code FROM grids WHERE ST_Contains(geom, ST_SetSRID(ST_MakePoint($1, $2),"
    " 4326)) ORDER BY code LIMIT 1",
    "st_intersects": "SELECT code FROM grids WHERE ST_Intersects(geom, ST_SetSRID(ST_MakePoint($1,"
    " $2), 4326)) ORDER BY code LIMIT 1",
}
_PG_BATCH = """
SELECT (SELECT g.code FROM grids g
        WHERE ST_Intersects(g.geom, ST_SetSRID(ST_MakePoint(p.x, p.y), 4326))
        ORDER BY g.code LIMIT 1)
FROM unnest($1::float8[], $2::float8[]) WITH ORDINALITY AS p(x, y, i)
ORDER BY p.i
"""


async def bench_postgis(
    admin_url: str,
    city: City,
    profile: Profile,
    xs: np.ndarray,
    ys: np.ndarray,
    answers: list[str | None],
) -> dict[str, Any]:
    import asyncpg

    admin = await asyncpg.connect(admin_url, timeout=5)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{PG_DATABASE}"')
    finally:
        await admin.close()
    try:
        base, _, _ = admin_url.rpartition("/")
        conn = await asyncpg.connect(f"{base}/{PG_DATABASE}", timeout=5)
        try:
            return await _postgis_run(conn, city, profile, xs, ys, answers)
        finally:
            await conn.close()
    finally:
        admin = await asyncpg.connect(admin_url, timeout=5)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
        finally:
            await admin.close()


async def _postgis_run(
    conn: Any,
    city: City,
    profile: Profile,
    xs: np.ndarray,
    ys: np.ndarray,
    answers: list[str | None],
) -> dict[str, Any]:
    await conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    version = await conn.fetchval("SELECT postgis_full_version()")
    started = time.perf_counter()
    await conn.execute("CREATE UNLOGGED TABLE staging (code text, wkb bytea)")
    wkbs = shapely.to_wkb(np.array(city.grid_geoms, dtype=object)).tolist()
    await conn.copy_records_to_table(
        "staging", records=list(zip(city.grid_codes, wkbs, strict=True)), columns=["code", "wkb"]
    )
    await conn.execute(
        "CREATE TABLE grids (code varchar(15) PRIMARY KEY, geom geometry(Geometry, 4326) NOT NULL)"
    )
    await conn.execute("INSERT INTO grids SELECT code, ST_GeomFromWKB(wkb, 4326) FROM staging")
    await conn.execute("DROP TABLE staging")
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    await conn.execute("CREATE INDEX grids_geom_gist ON grids USING gist (geom)")
    await conn.execute("VACUUM ANALYZE grids")
    index_s = time.perf_counter() - started
    log(f"PostGIS: loaded {len(city.grid_codes):,} grids in {load_s:.1f}s, GiST {index_s:.1f}s")

    plan = await conn.fetch("EXPLAIN " + _PG_SINGLE["st_contains"], 114.0, 22.8)
    uses_index = any("grids_geom_gist" in r[0] for r in plan)
    out: dict[str, Any] = {
        "version": version,
        "load_s": load_s,
        "gist_index_s": index_s,
        "plan_uses_gist": uses_index,
        "connection": "one asyncpg connection, prepared statement, one point per round trip",
    }
    lons, lats = xs.tolist(), ys.tolist()
    for name, sql in _PG_SINGLE.items():
        stmt = await conn.prepare(sql)
        for x, y in zip(lons[:300], lats[:300], strict=True):  # warm-up
            await stmt.fetchval(x, y)
        deadline = time.perf_counter() + profile.postgis_seconds
        latencies, mismatches = [], 0
        started = time.perf_counter()
        for i in range(min(profile.postgis_lookups, len(lons))):
            t0 = time.perf_counter()
            code = await stmt.fetchval(lons[i], lats[i])
            t1 = time.perf_counter()
            latencies.append(t1 - t0)
            mismatches += code != answers[i]
            if t1 > deadline:
                break
        elapsed = time.perf_counter() - started
        out[name] = {
            "lookups": len(latencies),
            "lookups_per_s": len(latencies) / elapsed,
            "latency_us": latency_summary(latencies, 1e6),
            "answer_mismatches": mismatches,
        }
        log(f"PostGIS {name}: {len(latencies) / elapsed:,.0f} lookups/s")

    n = min(BATCH, len(lons))
    stmt = await conn.prepare(_PG_BATCH)
    bx, by = xs[:n].tolist(), ys[:n].tolist()
    rows = await stmt.fetch(bx, by)  # warm-up + correctness
    mismatches = sum(r[0] != a for r, a in zip(rows, answers[:n], strict=True))
    times = []
    for _ in range(profile.postgis_batch_runs):
        t0 = time.perf_counter()
        await stmt.fetch(bx, by)
        times.append(time.perf_counter() - t0)
    best = min(times)
    out["batched_st_intersects"] = {
        "batch_size": n,
        "runs": len(times),
        "lookups_per_s": n / (sum(times) / len(times)),
        "best_lookups_per_s": n / best,
        "batch_latency_ms": latency_summary(times),
        "answer_mismatches": mismatches,
        "query": "one statement: unnest(lon[], lat[]) with a correlated ST_Intersects lookup",
    }
    log(f"PostGIS batched: {n / (sum(times) / len(times)):,.0f} lookups/s")
    return out


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "shapely": shapely.__version__,
        "geos": shapely.geos_version_string,
        "platform": platform.platform(),
    }


def targets(result: dict[str, Any]) -> dict[str, Any]:
    ip = result.get("in_process") or {}
    single = (ip.get("single") or {}).get("lookups_per_s")
    batched = (ip.get("batched") or {}).get("lookups_per_s")
    pg = result.get("postgis")
    pg_single = pg_batched = None
    if pg and single:
        # Against the faster of the two PostGIS predicates: the conservative comparison.
        best = max(pg["st_contains"]["lookups_per_s"], pg["st_intersects"]["lookups_per_s"])
        pg_single = single / best
    if pg and batched:
        pg_batched = batched / pg["batched_st_intersects"]["lookups_per_s"]
    http = result.get("http") or {}
    single_p99 = ((ip.get("single") or {}).get("latency_us") or {}).get("p99")
    return {
        "in_process_single_lookups_per_s": check(single, TARGETS["single_lookups_per_s"]),
        "in_process_batched_lookups_per_s": check(batched, TARGETS["batched_lookups_per_s"]),
        "in_process_single_vs_postgis": {
            **check(pg_single, TARGETS["vs_postgis"], unit="x"),
            "compared_with": "faster of PostGIS ST_Contains / ST_Intersects, one point per query",
        },
        "in_process_batched_vs_postgis": {
            **check(pg_batched, TARGETS["vs_postgis"], unit="x"),
            "compared_with": "PostGIS batched (10,000 points in one statement)",
        },
        "http_locate_vs_bare": check(http.get("locate_vs_bare"), TARGETS["http_vs_bare"], unit="x"),
        "info_in_process_single_p99_us": single_p99,
        "info_http_locate_vs_bare_by_server_cpu": http.get("locate_vs_bare_by_cpu"),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.grid_locate", description=__doc__)
    parser.add_argument("--grids", type=int, help="grids in the city (default 100,000)")
    parser.add_argument("--quick", action="store_true", help="10,000 grids, shorter runs")
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--postgres-url", default=os.environ.get("GG_BENCH_PG_URL", DEFAULT_PG_URL))
    parser.add_argument("--no-postgis", action="store_true", help="skip the PostGIS baseline")
    parser.add_argument("--probe-memory", metavar="DB", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run_all(args: argparse.Namespace, result: dict[str, Any], stack: contextlib.ExitStack) -> None:
    profile = QUICK if args.quick else FULL
    if args.grids:
        profile = dataclasses.replace(profile, grids=args.grids)
    result["params"] = {
        "grids": profile.grids,
        "quick": args.quick,
        "seed": args.seed,
        "concurrency": args.concurrency,
        "profile": dataclasses.asdict(profile),
    }
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gg-bench-locate-")))

    log(f"generating a city with {profile.grids:,} grids…")
    started = time.perf_counter()
    city = build_city(profile.grids, args.seed)
    vertices = shapely.get_num_coordinates(np.array(city.grid_geoms, dtype=object))
    result["city"] = {
        "district": DISTRICT,
        "bbox": list(DISTRICT_BOX),
        "streets": STREETS,
        "communities": city.communities,
        "grids": len(city.grid_codes),
        "grids_per_community": len(city.grid_codes) / city.communities,
        "grid_vertices": {"mean": float(vertices.mean()), "max": int(vertices.max())},
        "polygons": "Voronoi cells of seeded random points, clipped to the parent region",
        "generate_s": time.perf_counter() - started,
    }
    log(f"city ready in {result['city']['generate_s']:.1f}s")

    rng = np.random.default_rng(args.seed + 1)
    xs, ys = random_points(profile.single_lookups, rng)
    in_process, index, answers = bench_in_process(city, profile, xs, ys, rng)
    result["in_process"] = in_process
    del index

    db_path = tmp / "grid.db"
    log("writing the SQLite database…")
    result["sqlite"] = write_sqlite(city, db_path)
    log(f"wrote {result['sqlite']['rows']:,} regions in {result['sqlite']['write_s']:.1f}s")
    result["in_process"]["memory"] = measure_memory(db_path)
    log(f"index memory: {result['in_process']['memory']['total_mb']:.0f} MB")

    if args.no_postgis:
        result["postgis"] = None
        result["postgis_unavailable_reason"] = "skipped (--no-postgis)"
    else:
        try:
            result["postgis"] = run(
                bench_postgis(args.postgres_url, city, profile, xs, ys, answers)
            )
        except (OSError, TimeoutError) as exc:
            result["postgis"] = None
            result["postgis_unavailable_reason"] = f"cannot connect: {type(exc).__name__}: {exc}"
        except Exception as exc:  # e.g. PostGIS not installed, permission denied
            result["postgis"] = None
            result["postgis_unavailable_reason"] = f"{type(exc).__name__}: {exc}"
        if result["postgis"] is None:
            log(f"PostGIS baseline unavailable: {result['postgis_unavailable_reason']}")

    result["http"] = bench_http(tmp, db_path, stack, profile, args.concurrency, xs, ys, answers)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.probe_memory:
        probe_memory(args.probe_memory)
        return 0
    terminate_on_sigterm()
    started = time.perf_counter()
    result: dict[str, Any] = {
        "benchmark": "grid_locate",
        "command": " ".join(["python -m bench.grid_locate", *sys.argv[1:]]),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
    }
    result["machine"]["loadavg_at_start"] = list(os.getloadavg())
    status = 0
    try:
        with contextlib.ExitStack() as stack:
            run_all(args, result, stack)
    except Exception as exc:
        traceback.print_exc()
        result["error"] = f"{type(exc).__name__}: {exc}"
        status = 1
    result["targets"] = targets(result)
    flags = {k: t["pass"] for k, t in result["targets"].items() if isinstance(t, dict)}
    result["all_pass"] = all(f for f in flags.values() if f is not None)
    result["unmeasured_targets"] = [k for k, f in flags.items() if f is None]
    result["machine"]["loadavg_at_end"] = list(os.getloadavg())
    result["elapsed_s"] = time.perf_counter() - started
    emit(result)
    return status


if __name__ == "__main__":
    sys.exit(main())
