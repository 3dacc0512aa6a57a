"""notify-svc fan-out: hazard events published → signed webhooks accepted by three receivers.

    .venv/bin/python -m bench.notify_fanout [--rate 200] [--seconds 60] [--quick] [--no-probe]

Starts a Tansu broker, notify-svc (uvicorn subprocess, SQLite, the real consumer, delivery
worker and outbox) and three department receivers (HTTP servers verifying Standard Webhooks
signatures), publishes ``hazard.reported`` events at a fixed rate and measures, per delivery,
publish → accepted-by-receiver latency. Then probes higher rates for the maximum sustained rate
(every delivery accepted within 5 s of the last publish and p99 under 1 s). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from standardwebhooks import Webhook

from gridgov_common.auth import issue_token
from gridgov_common.bus import Bus
from gridgov_common.embedded import Broker, free_port, wait_for_port
from gridgov_common.events import TOPICS, make_event
from gridgov_common.events.inspection import HazardReported, VenueRef
from gridgov_common.settings import ServiceSettings
from gridgov_notify.webhooks import generate_secret

GRID = "440306001001001"
DEPTS = ("police_station", "fire_brigade", "community_committee")


def log(msg: str) -> None:
    print(f"[notify_fanout] {msg}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


class Receiver:
    """A department's system: verifies every signature and records when each event arrived."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.secret = generate_secret()
        self.port = free_port()
        self.arrivals: dict[str, float] = {}
        self.bad = 0
        self.duplicates = 0
        self.lock = threading.Lock()
        verifier = Webhook(self.secret)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                now = time.time()
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                try:
                    verifier.verify(body, {k.lower(): v for k, v in self.headers.items()})
                    event_id = json.loads(body)["event"]["id"]
                    with outer.lock:
                        if event_id in outer.arrivals:
                            outer.duplicates += 1
                        else:
                            outer.arrivals[event_id] = now
                    status = 200
                except Exception:
                    outer.bad += 1
                    status = 400
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


def hazard(seq: int) -> HazardReported:
    return HazardReported(
        hazard_id=f"hz-{seq}",
        checkpoint_id="cp-1",
        inspection_id=f"in-{seq}",
        venue=VenueRef(
            venue_id="v1",
            name="bench venue",
            venue_type="restaurant",
            address="1 Bench Road",
            location=(113.905, 22.56),
        ),
        grid_code=GRID,
        severity="major",
        item_code="FE-01",
        item_title="extinguisher",
        description="bench",
        deadline=datetime.now(UTC) + timedelta(days=3),
        reported_by="bench",
    )


async def run_phase(
    bus: Bus, receivers: list[Receiver], rate: float, seconds: float, start_seq: int
) -> dict[str, object]:
    sent: dict[str, float] = {}
    total = int(rate * seconds)
    t0 = time.monotonic()
    for i in range(total):
        target = t0 + i / rate
        delay = target - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        evt = make_event(
            hazard(start_seq + i), source="bench", subject=f"hz-{start_seq + i}", gridcode=GRID
        )
        body = evt.model_dump_json(exclude_none=True).encode()
        sent[evt.id] = time.time()
        await bus.publish("inspection.v1", GRID, body)
    publish_seconds = time.monotonic() - t0
    # Wait for the tail (bounded).
    deadline = time.monotonic() + 30
    settled_at = None
    while time.monotonic() < deadline:
        done = sum(1 for r in receivers for e in sent if e in r.arrivals)
        if done >= 3 * total:
            settled_at = time.monotonic()
            break
        await asyncio.sleep(0.1)
    lat = [r.arrivals[e] - t for r in receivers for e, t in sent.items() if e in r.arrivals]
    delivered = len(lat)
    tail = (settled_at - t0 - publish_seconds) if settled_at else None
    return {
        "rate_target": rate,
        "seconds": seconds,
        "events": total,
        "achieved_publish_rate": round(total / publish_seconds, 1),
        "deliveries_expected": 3 * total,
        "deliveries_accepted": delivered,
        "drain_after_last_publish_s": round(tail, 3) if tail is not None else None,
        "latency_ms": {
            "p50": _ms(percentile(lat, 0.5)),
            "p90": _ms(percentile(lat, 0.9)),
            "p99": _ms(percentile(lat, 0.99)),
            "max": _ms(max(lat) if lat else None),
        },
    }


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 1)


def sustained(phase: dict[str, object]) -> bool:
    lat = phase["latency_ms"]
    assert isinstance(lat, dict)
    return (
        phase["deliveries_accepted"] == phase["deliveries_expected"]
        and phase["drain_after_last_publish_s"] is not None
        and float(phase["drain_after_last_publish_s"]) <= 5  # type: ignore[arg-type]
        and lat["p99"] is not None
        and lat["p99"] <= 1000
    )


@contextlib.asynccontextmanager
async def environment(args: argparse.Namespace) -> AsyncIterator[tuple[Bus, list[Receiver]]]:
    """A fresh broker, notify-svc (own database) and three receivers: phases don't share load."""
    tmp = Path(tempfile.mkdtemp(prefix="notify-bench-"))
    broker = Broker(log_path=tmp / "tansu.log").start()
    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "GRIDGOV_DATABASE_URL": args.database_url or f"sqlite+aiosqlite:///{tmp}/notify.db",
            "GRIDGOV_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "GRIDGOV_TOPIC_PARTITIONS": "1",
            "GRIDGOV_LOG_LEVEL": "WARNING",
            "GRIDGOV_OUTBOX_POLL_SECONDS": "0.2",
        }
    )
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "gridgov_notify.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    with open(tmp / "notify.log", "wb") as out:  # noqa: ASYNC230
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=out)  # noqa: ASYNC220
    bus = Bus(broker.bootstrap, "bench-publisher")
    receivers = [Receiver(t) for t in DEPTS]
    try:
        wait_for_port(port, 30)
        token = issue_token(ServiceSettings(), subject="bench", roles=["admin"], scopes=["*"])
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}
        ) as http:
            for r in receivers:
                resp = await http.post(
                    "/v1/departments",
                    json={
                        "id": r.name,
                        "name": r.name,
                        "type": r.name,
                        "jurisdictions": ["440306001"],
                        "webhook": {"url": r.url, "secret": r.secret},
                    },
                )
                resp.raise_for_status()
        await bus.ensure_topics(TOPICS, 1, 1)
        log("warming up")
        await run_phase(bus, receivers, 10, 3, 0)
        yield bus, receivers
    finally:
        await bus.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        for r in receivers:
            r.server.shutdown()
        broker.stop()
        log(f"notify-svc data in {tmp}")


async def phase(args: argparse.Namespace, rate: float, seconds: float) -> dict[str, object]:
    async with environment(args) as (bus, receivers):
        log(f"phase: {rate}/s for {seconds}s")
        result = await run_phase(bus, receivers, rate, seconds, 1000)
        result["bad_signatures"] = sum(r.bad for r in receivers)
        result["duplicate_deliveries"] = sum(r.duplicates for r in receivers)
        return result


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    main = await phase(args, args.rate, args.seconds)
    max_rate = args.rate if sustained(main) else None
    probes = []
    if not args.no_probe:
        # Upwards from the main rate if it held, else downwards to the highest rate that holds.
        ladder = (300, 400, 600, 800, 1200) if max_rate else (100, 50, 25, 10, 5)
        for rate in ladder:
            if (max_rate and rate <= args.rate) or (not max_rate and rate >= args.rate):
                continue
            result = await phase(args, rate, args.probe_seconds)
            probes.append(result)
            if sustained(result):
                max_rate = max(max_rate or 0, rate)
                if rate < args.rate:
                    break  # going down: the first rate that holds is the answer
            elif max_rate:
                break  # going up: stop at the first rate that does not hold
    lat = main["latency_ms"]
    assert isinstance(lat, dict)
    return {
        "benchmark": "notify_fanout",
        "setup": "per phase: fresh Tansu broker, notify-svc (uvicorn subprocess, "
        + ("PostgreSQL" if args.database_url else "SQLite")
        + "), 3 webhook receivers (ThreadingHTTPServer, Standard Webhooks verify)",
        "main": main,
        "probes": probes,
        "max_sustained_rate_per_s": max_rate,
        "sustained_rule": "all deliveries accepted, drained within 5 s, p99 <= 1 s",
        "target": {
            "p99_ms": 250,
            "at_rate": 200,
            "value": lat["p99"],
            "pass": lat["p99"] is not None and lat["p99"] <= 250,
        },
        "cpus": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rate", type=float, default=200)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--probe-seconds", type=float, default=15)
    p.add_argument("--no-probe", action="store_true")
    p.add_argument(
        "--database-url",
        default="",
        help="an empty PostgreSQL database (main phase only; default: SQLite per phase)",
    )
    p.add_argument("--quick", action="store_true", help="10 s main phase, 5 s probes")
    args = p.parse_args()
    if args.database_url:
        args.no_probe = True  # each phase needs an empty database; one is given
    if args.quick:
        args.seconds = min(args.seconds, 10)
        args.probe_seconds = 5
    result = asyncio.run(main_async(args))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
