"""The load driver: a steady, bounded stream of the writes people make in the field.

Inspections with a photo (passing ones, and failing ones that open hazards), residence
registrations (a person, then the registration) and the departments' acknowledgements of what
their webhook receivers got. Every write carries an ``Idempotency-Key`` and is retried the way
the mobile app retries: after a connection error, a timeout, a 502/503/504 or "still in
progress" 409, with the same key and the same body, until a final answer or the write's
deadline. The driver's own record of who got a 2xx is what the reconciliation checks against.
Loopback only; bounded by the caller's time windows and ``max_in_flight``.

The load generator (``reliability/load.py``) uses the same request builders with
``write_deadline=0`` (one attempt, as measured) and passes each request's scheduled time as
``at``, so a request that waited for a free slot counts that wait in its latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from gridgov_common.auth import issue_token
from gridgov_common.demo.photos import unique_jpeg
from gridgov_common.settings import ServiceSettings
from gridgov_common.testing import WebhookReceiver
from gridgov_grid.fixtures import SmallCity, create_small_city
from gridgov_notify.webhooks import generate_secret

_SETTINGS = ServiceSettings()
ADMIN = issue_token(_SETTINGS, subject="reliability-admin", roles=["admin"], scopes=["440306"])
# The set-up is a bulk load (hundreds of checkpoints in seconds): the "service" role keeps it
# out of the per-caller write budget, as for any bulk loader; the measured writes are not.
LOADER = issue_token(
    _SETTINGS, subject="reliability-loader", roles=["admin", "service"], scopes=["440306"]
)
INSPECTOR = issue_token(
    _SETTINGS, subject="reliability-inspector", roles=["inspector"], scopes=["440306"]
)
# The departments that cover the small city's first street: every hazard there reaches all three.
DEPARTMENTS = {
    "police-xinan": ("police_station", ["440306001"]),
    "fire-baoan": ("fire_brigade", ["440306"]),
    "committee-haiyu": ("community_committee", ["440306001001"]),
}
RETRY_STATUSES = {502, 503, 504}


def department_token(dept: str, operator: int = 0) -> str:
    return issue_token(
        _SETTINGS,
        subject=f"reliability-{dept}" + (f"-{operator}" if operator else ""),
        roles=["department"],
        scopes=["440306"],
        department_id=dept,
    )


def field_worker_token(n: int) -> str:
    """A grid worker's app: inspects checkpoints and registers residents in the district."""
    return issue_token(
        _SETTINGS,
        subject=f"reliability-worker-{n}",
        roles=["inspector", "registrar"],
        scopes=["440306"],
    )


def ensure_loopback(url: str) -> None:
    """The suite drives load: it must never be pointed at anything but this machine."""
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"refusing a non-loopback target: {url}")


def jpeg() -> bytes:
    """A unique small JPEG-structured payload (the service checks type and structure)."""
    return unique_jpeg(6 * 1024)


def citizen_id(n: int) -> str:
    """A valid GB 11643 number, unique per ``n`` (birth date walks forward one day per n)."""
    birth = (date(1970, 1, 1) + timedelta(days=n // 400)).strftime("%Y%m%d")
    first17 = f"420102{birth}{101 + 2 * (n % 400):03d}"  # odd: male
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    check = "10X98765432"[sum(int(d) * w for d, w in zip(first17, weights, strict=True)) % 11]
    return first17 + check


@dataclass
class Write:
    """One logical write as the client saw it."""

    kind: str  # inspection, hazard, person, registration, ack; locate (a read, load only)
    key: str
    phase: str
    started: float  # when it was due (scheduled), not when a free slot let it go
    attempts: int = 0
    status: int | None = None  # the final status; None: no answer before the deadline
    last_status: int | None = None  # the last attempt's status (None: no HTTP answer)
    finished: float | None = None
    error: str | None = None  # the last attempt's transport error, if it had no answer
    slug: str | None = None
    body: dict[str, Any] = field(default_factory=dict)  # the response body on 2xx
    meta: dict[str, Any] = field(default_factory=dict)  # what reconciliation needs
    unexpected: list[int] = field(default_factory=list)  # 5xx on the way, but 502/503/504/507

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def outcome(self) -> str:
        if self.accepted:
            return "accepted"
        return "refused" if self.status is not None else "no-answer"


@dataclass
class Site:
    checkpoint_id: str
    tag_uid: str
    point: tuple[float, float]
    items: list[str]


class Driver:
    """``workers=0``: one inspector and the admin write everything (the faults suite);
    ``workers=n``: n field workers' apps and as many operators per department (the load),
    so per-token limits see what a day of many users looks like."""

    def __init__(
        self,
        urls: dict[str, str],
        *,
        write_deadline: float,
        max_in_flight: int = 24,
        workers: int = 0,
        timeout: float = 10.0,
    ):
        for url in urls.values():
            ensure_loopback(url)
        self.urls = urls
        self.timeout = timeout
        self.write_deadline = write_deadline
        self.max_in_flight = asyncio.Semaphore(max_in_flight)
        self.phase = "setup"
        self.writes: list[Write] = []
        self.receivers = {name: WebhookReceiver(secret=generate_secret()) for name in DEPARTMENTS}
        self.city: SmallCity | None = None
        self.pass_sites: list[Site] = []
        self.hazard_sites: list[Site] = []
        self.house_ids: list[str] = []
        self._seq = 0
        self._venues = 0
        self._acked: set[str] = set()
        self._seen = dict.fromkeys(DEPARTMENTS, 0)  # deliveries already looked at, per receiver
        self.workers = [field_worker_token(n) for n in range(workers)]
        self.operators = {
            dept: [department_token(dept, k + 1) for k in range(max(1, workers // 10))]
            for dept in DEPARTMENTS
        }
        self._tasks: set[asyncio.Task[Any]] = set()
        self._clients: dict[str, httpx.AsyncClient] = {}

    def client(self, service: str) -> httpx.AsyncClient:
        if service not in self._clients:
            self._clients[service] = httpx.AsyncClient(
                base_url=self.urls[service], timeout=httpx.Timeout(self.timeout, connect=2.0)
            )
        return self._clients[service]

    async def close(self) -> None:
        for c in self._clients.values():
            await c.aclose()

    # ---------------------------------------------------------------- set-up (not measured)

    async def setup(self, hazard_sites: int, pass_sites: int = 10) -> None:
        admin = {"Authorization": f"Bearer {LOADER}"}
        for name, (kind, prefixes) in DEPARTMENTS.items():
            receiver = self.receivers[name]
            r = await self.client("notify").post(
                "/v1/departments",
                headers=admin,
                json={
                    "id": name,
                    "name": name,
                    "type": kind,
                    "jurisdictions": prefixes,
                    "webhook": {"url": receiver.url, "secret": receiver.secret},
                },
            )
            r.raise_for_status()
        async with httpx.AsyncClient(base_url=self.urls["grid"], headers=admin, timeout=30) as g:
            self.city = await create_small_city(g)
        self.pass_sites = await self._sites(pass_sites, per_venue=10)
        self.hazard_sites = await self._sites(hazard_sites, per_venue=10)
        lon, lat = self.city.point_in(self.city.grid_east)
        for n in range(3):
            r = await self.client("population").post(
                "/v1/houses",
                headers=admin,
                json={
                    "community_code": self.city.community,
                    "address": f"海裕工业区宿舍 {n + 1} 栋",
                    "lon": lon,
                    "lat": lat,
                    "owner_name": "李四",
                    "owner_id_number": citizen_id(900_000 + n),
                    "owner_phone": "13900001111",
                    "floor_area_m2": 20000.0,  # room for everyone: no overcrowding here
                    "floor": 1,
                    "layout": "集体宿舍",
                    "use": "collective_dormitory",
                    "rooms": [],
                },
            )
            r.raise_for_status()
            self.house_ids.append(r.json()["id"])

    async def _sites(self, count: int, per_venue: int) -> list[Site]:
        assert self.city is not None
        admin = {"Authorization": f"Bearer {LOADER}"}
        http = self.client("inspection")
        items = (await http.get("/v1/templates/restaurant", headers=admin)).json()["items"]
        # Venues alternate between the two grids of the first community (both routed to all
        # three departments), so two grids' read models and hazard streams are in play.
        grids = [self.city.grid_west, self.city.grid_east]
        sites: list[Site] = []
        while len(sites) < count:
            self._venues += 1
            point = self.city.point_in(grids[self._venues % 2])
            venue = await http.post(
                "/v1/venues",
                headers=admin,
                json={
                    "name": f"饭店{self._venues}",
                    "venue_type": "restaurant",
                    "address": "海裕路1号",
                    "location": list(point),
                    "floor_area_m2": 80,
                    "operator_name": "王老板",
                    "contact_phone": "13800000000",
                    "licence_no": "91440300MA5X",
                },
            )
            venue.raise_for_status()
            for _ in range(min(per_venue, count - len(sites))):
                cp = await http.post(
                    f"/v1/venues/{venue.json()['id']}/checkpoints",
                    headers=admin,
                    json={"name": "后厨", "tag_uid": os.urandom(7).hex().upper(), "cycle_days": 30},
                )
                cp.raise_for_status()
                body = cp.json()
                sites.append(Site(body["id"], body["tag_uid"], point, [i["code"] for i in items]))
        return sites

    # ---------------------------------------------------------------- the stream

    async def stream(self, seconds: float, rate_per_kind: float) -> None:
        """Start writes at a steady rate for ``seconds`` (open loop: a slow or absent
        service does not slow the arrivals, as in the field); acks follow deliveries."""
        interval = 1.0 / rate_per_kind
        end = time.monotonic() + seconds
        nxt = time.monotonic()
        while time.monotonic() < end:
            self.spawn(self.inspection(fail=False))
            if self.hazard_sites:
                self.spawn(self.inspection(fail=True))
            self.spawn(self.registration())
            self.ack_new_deliveries()
            nxt += interval
            await asyncio.sleep(max(0.0, nxt - time.monotonic()))

    def spawn(self, coro: Any) -> None:
        """Run ``coro`` once one of ``max_in_flight`` slots is free."""

        async def bounded() -> None:
            async with self.max_in_flight:
                await coro

        task = asyncio.create_task(bounded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def settle(self, timeout: float) -> None:
        """Wait for the writes in flight (each is bounded by its own deadline)."""
        deadline = time.monotonic() + timeout
        while self._tasks and time.monotonic() < deadline:
            await asyncio.wait(set(self._tasks), timeout=1.0)

    def ack_new_deliveries(self) -> None:
        """Each department acknowledges what its receiver got, as soon as it sees it."""
        now = time.monotonic()
        for name, receiver in self.receivers.items():
            new = receiver.accepted[self._seen[name] :]
            self._seen[name] += len(new)
            for delivery in new:
                dispatch_id = delivery["dispatch"]["id"]
                if dispatch_id not in self._acked:  # a redelivery is acknowledged once
                    self._acked.add(dispatch_id)
                    self.spawn(self.acknowledge(name, dispatch_id, at=now))

    def _worker(self, n: int) -> str:
        return self.workers[n % len(self.workers)] if self.workers else INSPECTOR

    async def locate(self, at: float | None = None) -> None:
        """The app's "which grid am I in": a point somewhere in one of the city's grids."""
        assert self.city is not None
        n = self._next()
        grids = [self.city.grid_west, self.city.grid_east, self.city.other_grid]
        west, south, east, north = self.city.boxes[grids[n % len(grids)]]
        f = (n * 0.618034) % 1.0  # spread the points over the box
        lon, lat = west + (east - west) * f, south + (north - south) * (1 - f)
        await self._send(
            "locate",
            "grid",
            "/v1/locate",
            self._worker(n),
            meta={},
            at=at,
            method="GET",
            params={"lon": f"{lon:.6f}", "lat": f"{lat:.6f}"},
        )

    async def inspection(self, fail: bool, at: float | None = None) -> None:
        pool = self.hazard_sites if fail else self.pass_sites
        if not pool:
            return
        n = self._next()
        site = pool.pop() if fail else pool[n % len(pool)]
        body = {
            "checkpoint_id": site.checkpoint_id,
            "tag_uid": site.tag_uid,
            "scanned_at": datetime.now(UTC).isoformat(),
            "position": list(site.point),
            "accuracy_m": 8,
            "answers": [
                {
                    "item_code": code,
                    "result": "fail" if fail and code == site.items[0] else "pass",
                    "note": "通道堆放杂物" if fail and code == site.items[0] else None,
                }
                for code in site.items
            ],
        }
        photo = jpeg()
        await self._send(
            "hazard" if fail else "inspection",
            "inspection",
            "/v1/inspections",
            self._worker(n),
            meta={"checkpoint_id": site.checkpoint_id, "scanned_at": body["scanned_at"]},
            at=at,
            data={"inspection": json.dumps(body)},
            files=[("photos", ("scene.jpg", photo, "image/jpeg"))],
        )

    async def registration(self, at: float | None = None) -> None:
        """A person, then their registration at a house (sent as soon as the first returns)."""
        assert self.city is not None
        n = self._next()
        number = citizen_id(n)
        token = self._worker(n) if self.workers else ADMIN
        person = await self._send(
            "person",
            "population",
            "/v1/persons",
            token,
            meta={"n": n},
            at=at,
            json={
                "region_code": self.city.street,
                "name": f"工人{n}",
                "id_number": number,
                "sex": "male",
                "birth_date": f"{number[6:10]}-{number[10:12]}-{number[12:14]}",
                "phone": f"138{n:08d}",
                "household_region_code": "420102",
                "household_address": "湖北省武汉市",
            },
        )
        if not person.accepted:
            return
        await self._send(
            "registration",
            "population",
            "/v1/registrations",
            token,
            meta={"person_id": person.body["id"]},
            json={
                "person_id": person.body["id"],
                "house_id": self.house_ids[n % len(self.house_ids)],
                "arrival_date": date.today().isoformat(),
                "reason": "work",
            },
        )

    async def acknowledge(self, dept: str, dispatch_id: str, at: float | None = None) -> None:
        operators = self.operators[dept] if self.workers else [department_token(dept)]
        await self._send(
            "ack",
            "notify",
            f"/v1/dispatches/{dispatch_id}/ack",
            operators[self._next() % len(operators)],
            meta={"dispatch_id": dispatch_id, "department": dept},
            at=at,
        )

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    async def _send(
        self,
        kind: str,
        service: str,
        path: str,
        token: str,
        meta: dict[str, Any],
        at: float | None = None,
        method: str = "POST",
        **kw: Any,
    ) -> Write:
        started = time.monotonic() if at is None else at
        w = Write(kind, str(uuid.uuid4()), self.phase, started, meta=meta)
        self.writes.append(w)
        headers = {"Authorization": f"Bearer {token}"}
        if method == "POST":
            headers["Idempotency-Key"] = w.key
        deadline = w.started + self.write_deadline
        pause = 0.25
        while True:
            w.attempts += 1
            retry = False
            try:
                r = await self.client(service).request(method, path, headers=headers, **kw)
            except httpx.TransportError as exc:
                w.last_status, w.error = None, type(exc).__name__
                retry = True
            else:
                w.last_status, w.error = r.status_code, None
                if r.status_code >= 500 and r.status_code != 507:  # 507: full, retry later
                    if r.status_code not in RETRY_STATUSES:
                        w.unexpected.append(r.status_code)
                    retry = True
                elif r.status_code == 409 and _slug(r) == "idempotent-request-in-progress":
                    retry = True
                else:
                    w.status = r.status_code
                    if r.is_success:
                        w.body = r.json()
                    else:
                        w.slug = _slug(r)
            if not retry or time.monotonic() + pause > deadline:
                w.finished = time.monotonic()
                if retry:
                    w.slug = "no-final-answer"
                return w
            await asyncio.sleep(pause)
            pause = min(pause * 2, 3.0)


def _slug(r: httpx.Response) -> str | None:
    """The problem's slug: ``urn:gridgov:problem:SLUG`` (or a URL ending in ``/SLUG``)."""
    with contextlib.suppress(ValueError, AttributeError):
        kind = str(r.json().get("type") or "").rstrip("/")
        return kind.replace("/", ":").rsplit(":", 1)[-1] or None
    return None
