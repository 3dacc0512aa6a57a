"""inspection-svc submissions: requests per second and latency at concurrency 32, 200 KB photo.

    .venv/bin/python -m bench.inspection_submit [--requests 3000] [--seconds 30] [--quick]

Prints one JSON object on stdout (progress on stderr). One run:

1. A Tansu broker, grid-svc and inspection-svc as uvicorn processes (same options as every
   benchmark, SQLite files in a temporary directory), the small test city built through
   grid-svc's API, and 200 venues with one checkpoint each registered through inspection-svc.
2. ``POST /v1/inspections`` (multipart: the JSON part + one 200 KB JPEG) over 32 keep-alive
   connections, closed loop, bounded by a request count and a time limit. Every request has
   its own photo (a unique SHA-256, so the reuse rule never fires) and a fresh scan time,
   and passes every proof-of-presence rule; all 201s are expected.
The issue sets no target for this figure (it asks for submissions per second and p99 at
concurrency 32); ``all_created`` says whether every request was accepted.

3. Baseline in the same run: ``GET /healthz`` of the same process at the same concurrency
   (the service's floor with no database work), so the figure can be read against it.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.harness import UvicornProcess, emit, http_get, http_load, log, run, terminate_on_sigterm
from gridgov_common.auth import issue_token
from gridgov_common.demo.photos import jpeg_around
from gridgov_common.settings import ServiceSettings
from gridgov_common.testing import Broker
from gridgov_grid.fixtures import create_small_city

PHOTO_BYTES = 200 * 1024
CHECKPOINTS = 200
CONCURRENCY = 32
ADMIN = issue_token(ServiceSettings(), subject="bench-admin", roles=["admin"], scopes=["*"])
INSPECTOR = issue_token(
    ServiceSettings(), subject="bench-inspector", roles=["inspector"], scopes=["*"]
)


class Submissions(Sequence[bytes]):
    """Raw HTTP requests built on demand: a unique photo and a fresh scan time each."""

    def __init__(self, port: int, sites: list[dict[str, Any]], answers: list[dict[str, Any]]):
        self.port = port
        self.sites = sites
        self.answers = answers
        self.filler = os.urandom(PHOTO_BYTES - 64)

    def __len__(self) -> int:
        return 10**9

    def __getitem__(self, i: Any) -> Any:
        site = self.sites[i % len(self.sites)]
        body = {
            "checkpoint_id": site["id"],
            "tag_uid": site["tag_uid"],
            "scanned_at": datetime.now(UTC).isoformat(),
            "position": site["location"],
            "accuracy_m": 10,
            "answers": self.answers,
        }
        boundary = uuid.uuid4().hex
        photo = jpeg_around(uuid.uuid4().bytes + os.urandom(34) + self.filler)
        payload = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="inspection"\r\n\r\n'
                f"{json.dumps(body)}\r\n--{boundary}\r\nContent-Disposition: form-data; "
                f'name="photos"; filename="p.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
            ).encode()
            + photo
            + f"\r\n--{boundary}--\r\n".encode()
        )
        head = (
            f"POST /v1/inspections HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Authorization: Bearer {INSPECTOR}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        ).encode()
        return head + payload


async def setup(grid_url: str, insp_url: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with httpx.AsyncClient(base_url=grid_url, headers=headers, timeout=30) as http:
        city = await create_small_city(http)
    sites = []
    async with httpx.AsyncClient(base_url=insp_url, headers=headers, timeout=30) as http:
        codes = [city.grid_west, city.grid_east, city.other_grid]
        for i in range(CHECKPOINTS):
            lon, lat = city.point_in(codes[i % 3])
            lon += (i // 3) * 1e-5
            r = await http.post(
                "/v1/venues",
                json={
                    "name": f"店铺 {i}",
                    "venue_type": "restaurant",
                    "address": f"路 {i} 号",
                    "location": [lon, lat],
                },
            )
            r.raise_for_status()
            r = await http.post(
                f"/v1/venues/{r.json()['id']}/checkpoints",
                json={"name": "前台", "tag_uid": f"04{i:012X}"},
            )
            r.raise_for_status()
            sites.append(r.json())
        tpl = (await http.get("/v1/templates/restaurant")).json()
    answers = [{"item_code": it["code"], "result": "pass"} for it in tpl["items"]]
    return sites, answers


def main() -> None:
    terminate_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--quick", action="store_true", help="500 requests, 10 s")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.seconds = 500, 10.0
    result: dict[str, Any] = {
        "benchmark": "inspection_submit",
        "concurrency": CONCURRENCY,
        "photo_bytes": PHOTO_BYTES,
        "checkpoints": CHECKPOINTS,
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        broker = Broker(log_path=tmpdir / "tansu.log", partitions=1).start()
        try:
            common = {
                "GRIDGOV_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
                "GRIDGOV_LOG_LEVEL": "WARNING",
                "GRIDGOV_TOPIC_PARTITIONS": "1",
                # One token stands for a fleet of devices: a write budget no run reaches, so
                # the limiter is on the measured path but never refuses.
                "GRIDGOV_RATE_LIMIT_WRITES": "100000000",
            }
            with (
                UvicornProcess(
                    "gridgov_grid.main:app",
                    log_path=tmpdir / "grid.log",
                    env={**common, "GRIDGOV_DATABASE_URL": f"sqlite+aiosqlite:///{tmpdir}/grid.db"},
                ) as grid,
                UvicornProcess(
                    "gridgov_inspection.main:app",
                    log_path=tmpdir / "inspection.log",
                    env={
                        **common,
                        "GRIDGOV_DATABASE_URL": f"sqlite+aiosqlite:///{tmpdir}/inspection.db",
                        "GRIDGOV_GRID_SVC_URL": grid.url,
                        "GRIDGOV_PHOTO_DIR": str(tmpdir / "photos"),
                    },
                ) as insp,
            ):
                log("setting up city, venues and checkpoints")
                sites, answers = run(setup(grid.url, insp.url))
                requests = Submissions(insp.port, sites, answers)
                log("warm-up")
                run(
                    http_load(
                        insp.port,
                        requests,
                        concurrency=CONCURRENCY,
                        max_requests=100,
                        max_seconds=10,
                    )
                )
                log(f"load: {args.requests} submissions or {args.seconds}s")
                t0 = time.perf_counter()
                load = run(
                    http_load(
                        insp.port,
                        requests,
                        concurrency=CONCURRENCY,
                        max_requests=args.requests,
                        max_seconds=args.seconds,
                    )
                )
                log(f"done in {time.perf_counter() - t0:.1f}s: {load.summary()['statuses']}")
                result["submit"] = load.summary()
                baseline = run(
                    http_load(
                        insp.port,
                        [http_get("/healthz", insp.port)],
                        concurrency=CONCURRENCY,
                        max_requests=5000,
                        max_seconds=10,
                    )
                )
                result["baseline_healthz"] = baseline.summary()
                result["service_rss_mb"] = insp.rss_bytes() / 2**20
        finally:
            broker.stop()
    s = result["submit"]
    all_created = set(s["statuses"]) == {"201"} and s["errors"] == 0
    result["all_created"] = all_created
    emit(result)


if __name__ == "__main__":
    main()
