"""notify-svc fan-out: hazard events published → signed webhooks accepted by three receivers.

    .venv/bin/python -m bench.notify_fanout [--database sqlite|postgres|both] [--rate 200]
        [--seconds 60] [--quick] [--no-probe] [--postgres-url postgresql+asyncpg://...]

Per backend and phase: a fresh Tansu broker, a fresh notify-svc database (a SQLite file, or a
new database on the PostgreSQL server, dropped afterwards), notify-svc itself (uvicorn
subprocess: the real consumer, delivery worker and outbox) and three department receivers
(HTTP servers verifying Standard Webhooks signatures, in a child process so that they do not
share the publisher's interpreter). It publishes ``hazard.reported`` events at a fixed rate and
measures, per delivery, publish → accepted-by-receiver latency, and the CPU time notify-svc
spent per event (a figure that a busy shared machine disturbs much less than latency). Then
it probes other rates for the maximum sustained rate (every delivery accepted within 5 s of
the last publish and p99 under 1 s). Prints one JSON object with a section per backend and
the target's pass flag for each.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url
from standardwebhooks import Webhook

from bench.harness import process_cpu_seconds
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


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # notify-svc stopping resets its keep-alive connections: not worth a traceback


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

        self.server = QuietServer(("127.0.0.1", self.port), Handler)
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


class Receivers:
    """The three department receivers, served from a child process (own interpreter and GIL).

    Commands over a pipe: ``count`` (arrivals so far), ``take`` (arrivals, bad signatures and
    duplicates, then forget them)."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve_receivers, args=(child,), daemon=True)
        self.process.start()
        self.departments: list[tuple[str, str, str]] = self.conn.recv()

    def ask(self, command: str) -> Any:
        self.conn.send(command)
        return self.conn.recv()

    def stop(self) -> None:
        self.process.kill()
        self.process.join(5)


def _serve_receivers(conn: Any) -> None:
    receivers = [Receiver(name) for name in DEPTS]
    conn.send([(r.name, r.url, r.secret) for r in receivers])
    while True:
        command = conn.recv()
        if command == "count":
            conn.send(sum(len(r.arrivals) for r in receivers))
        elif command == "take":
            taken = []
            for r in receivers:
                with r.lock:
                    taken.append((r.arrivals, r.bad, r.duplicates))
                    r.arrivals, r.bad, r.duplicates = {}, 0, 0
            conn.send(taken)


async def run_phase(
    bus: Bus, receivers: Receivers, rate: float, seconds: float, start_seq: int, pid: int
) -> dict[str, object]:
    sent: dict[str, float] = {}
    total = int(rate * seconds)
    cpu0 = process_cpu_seconds(pid)
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
        if receivers.ask("count") >= 3 * total:
            settled_at = time.monotonic()
            break
        await asyncio.sleep(0.1)
    cpu = process_cpu_seconds(pid) - cpu0
    taken = receivers.ask("take")
    lat = [arrivals[e] - t for arrivals, _, _ in taken for e, t in sent.items() if e in arrivals]
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
        "notify_cpu_ms_per_event": round(1000 * cpu / total, 2) if total else None,
        "bad_signatures": sum(bad for _, bad, _ in taken),
        "duplicate_deliveries": sum(dup for _, _, dup in taken),
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
async def fresh_database(backend: str, postgres_url: str, tmp: Path) -> AsyncIterator[str]:
    """An empty database for one phase: a SQLite file, or a new PostgreSQL database."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp}/notify.db"
        return
    import asyncpg

    url = make_url(postgres_url)
    name = f"notify_bench_{uuid.uuid4().hex[:12]}"
    admin_dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def postgres_unavailable(postgres_url: str) -> str | None:
    import asyncpg

    url = make_url(postgres_url).set(drivername="postgresql")
    try:
        conn = await asyncpg.connect(url.render_as_string(hide_password=False), timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"no PostgreSQL at {url.render_as_string()}: {type(exc).__name__}: {exc}"
    await conn.close()
    return None


@contextlib.asynccontextmanager
async def environment(
    args: argparse.Namespace, backend: str
) -> AsyncIterator[tuple[Bus, Receivers, int]]:
    """A fresh broker, notify-svc (own database) and three receivers: phases don't share load."""
    tmp = Path(tempfile.mkdtemp(prefix="notify-bench-"))
    broker = Broker(log_path=tmp / "tansu.log", partitions=1).start()
    receivers = Receivers()
    port = free_port()
    async with fresh_database(backend, args.postgres_url, tmp) as database_url:
        env = dict(os.environ)
        env.update(
            {
                "GRIDGOV_DATABASE_URL": database_url,
                "GRIDGOV_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
                "GRIDGOV_TOPIC_PARTITIONS": "1",
                "GRIDGOV_LOG_LEVEL": "WARNING",
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
        try:
            wait_for_port(port, 60)
            token = issue_token(ServiceSettings(), subject="bench", roles=["admin"], scopes=["*"])
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}
            ) as http:
                for name, url, secret in receivers.departments:
                    resp = await http.post(
                        "/v1/departments",
                        json={
                            "id": name,
                            "name": name,
                            "type": name,
                            "jurisdictions": ["440306001"],
                            "webhook": {"url": url, "secret": secret},
                        },
                    )
                    resp.raise_for_status()
            await bus.ensure_topics(TOPICS, 1, 1)
            log("warming up")
            await run_phase(bus, receivers, 10, 3, 0, proc.pid)
            yield bus, receivers, proc.pid
        finally:
            await bus.close()
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
            receivers.stop()
            broker.stop()
            log(f"notify-svc log and data in {tmp}")


async def phase(
    args: argparse.Namespace, backend: str, rate: float, seconds: float
) -> dict[str, object]:
    async with environment(args, backend) as (bus, receivers, pid):
        log(f"{backend}: {rate}/s for {seconds}s")
        return await run_phase(bus, receivers, rate, seconds, 1000, pid)


async def run_backend(args: argparse.Namespace, backend: str) -> dict[str, object]:
    main = await phase(args, backend, args.rate, args.seconds)
    max_rate = args.rate if sustained(main) else None
    probes = []
    if not args.no_probe:
        # Upwards from the main rate if it held, else downwards to the highest rate that holds.
        ladder = (300, 400, 600, 800, 1200) if max_rate else (150, 100, 50, 25, 10, 5)
        for rate in ladder:
            if (max_rate and rate <= args.rate) or (not max_rate and rate >= args.rate):
                continue
            result = await phase(args, backend, rate, args.probe_seconds)
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
        "main": main,
        "probes": probes,
        "max_sustained_rate_per_s": max_rate,
        "target": {
            "p99_ms": 250,
            "at_rate": 200,
            "seconds": 60,
            "value": lat["p99"],
            "pass": bool(
                args.rate >= 200
                and args.seconds >= 60
                and sustained(main)
                and lat["p99"] is not None
                and lat["p99"] <= 250
            ),
        },
    }


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    backends = ("sqlite", "postgres") if args.database == "both" else (args.database,)
    results: dict[str, object] = {}
    for backend in backends:
        if backend == "postgres" and args.database == "both":
            problem = await postgres_unavailable(args.postgres_url)
            if problem:  # e.g. `make bench` on a laptop without PostgreSQL
                log(f"postgres skipped: {problem}")
                results[backend] = {"skipped": problem}
                continue
        results[backend] = await run_backend(args, backend)
    return {
        "benchmark": "notify_fanout",
        "setup": "per backend and phase: fresh Tansu broker, fresh notify-svc database "
        "(SQLite file or new PostgreSQL database), notify-svc as a uvicorn subprocess, "
        "3 webhook receivers (ThreadingHTTPServer in a child process, Standard Webhooks verify)",
        "backends": results,
        "sustained_rule": "all deliveries accepted, drained within 5 s, p99 <= 1 s",
        "target_rule": "p99 <= 250 ms at 200 events/s for 60 s, every delivery accepted",
        "cpus": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--database", choices=("sqlite", "postgres", "both"), default="both")
    p.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
        ),
        help="a PostgreSQL server (with PostGIS) where a database per phase may be created",
    )
    p.add_argument("--rate", type=float, default=200)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--probe-seconds", type=float, default=15)
    p.add_argument("--no-probe", action="store_true")
    p.add_argument("--quick", action="store_true", help="10 s main phase, 5 s probes")
    args = p.parse_args()
    if args.quick:
        args.seconds = min(args.seconds, 10)
        args.probe_seconds = 5
    result = asyncio.run(main_async(args))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
