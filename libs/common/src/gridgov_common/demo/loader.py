"""Loading the demo city into running services, through their public HTTP APIs only.

Order follows the dependencies: grid-svc (territory and members) first, since every venue
and house is located by it; then notify-svc's departments, so the first hazard already has
someone to reach; then inspection-svc and population-svc side by side (independent of each
other). Requests run concurrently up to a few per service: SQLite serialises writes anyway,
but overlapping the HTTP work keeps each service busy.

A hazard's loop runs across services: inspection-svc reports it, notify-svc routes it, the
departments act on their dispatches *as themselves* (department tokens), and inspection-svc
follows the dispatch events; so the loader waits for each event-driven step it builds on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from ..auth import issue_token
from ..settings import ServiceSettings
from .city import DemoCity, plan
from .grid import DISTRICT
from .venues import FRONT_LINE, photo, sun_message

log = logging.getLogger("gridgov.demo")
# Requests in flight per service. SQLite has one writer: past a few concurrent writes a
# service spends its time in SQLite's busy handler (population-svc, measured: 4 in flight
# ~115 persons/s, 8 in flight ~90/s).
CONCURRENCY = {"grid": 8, "inspection": 6, "population": 4, "notify": 6}
POLL_SECONDS = 0.3
WAIT_SECONDS = 120.0
PROBLEM = "urn:gridgov:problem:"


class DemoAlreadyLoaded(RuntimeError):
    """The district of the demo city exists already: loading again would duplicate it."""


class DemoLoadError(RuntimeError):
    pass


def load(
    urls: dict[str, str],
    settings: ServiceSettings | None = None,
    *,
    scale: float = 1.0,
    city: DemoCity | None = None,
) -> dict[str, int]:
    """Load the demo city into running services; returns what was created, per kind.

    ``urls`` maps grid, inspection, population and notify to base URLs; with only ``grid``
    just the territory is loaded. Raises ``DemoAlreadyLoaded`` if the district exists.
    """
    return asyncio.run(Loader(urls, settings or ServiceSettings(), city or plan(scale=scale)).run())


class Loader:
    def __init__(self, urls: dict[str, str], settings: ServiceSettings, city: DemoCity) -> None:
        self.urls = urls
        self.settings = settings
        self.city = city
        self.counts: Counter[str] = Counter()
        # A bulk caller: the service role exempts it (and the inspectors it acts as, ~240
        # uploads each within minutes) from the per-caller write budget (ratelimit.py).
        # Departments act with their own tokens alone: the service role would widen what
        # notify-svc shows them, and each makes only a few writes.
        self.admin = self.token("demo-loader", ["admin", "service"], ["*"])
        self._tokens: dict[str, str] = {}
        self.http: dict[str, httpx.AsyncClient] = {}
        self.limits: dict[str, asyncio.Semaphore] = {}
        self.started = time.monotonic()

    def token(self, subject: str, roles: list[str], scopes: list[str], **kw: Any) -> str:
        return issue_token(
            self.settings,
            subject=subject,
            roles=roles,
            scopes=scopes,
            ttl=timedelta(hours=2),
            **kw,
        )

    def as_department(self, dept_id: str) -> dict[str, str]:
        if dept_id not in self._tokens:
            self._tokens[dept_id] = self.token(
                f"duty-officer@{dept_id}", ["department"], [DISTRICT[0]], department_id=dept_id
            )
        return {"Authorization": f"Bearer {self._tokens[dept_id]}"}

    def as_inspector(self, name: str) -> dict[str, str]:
        if name not in self._tokens:
            self._tokens[name] = self.token(name, ["inspector", "service"], [DISTRICT[0]])
        return {"Authorization": f"Bearer {self._tokens[name]}"}

    async def run(self) -> dict[str, int]:
        self.started = time.monotonic()
        for name, url in self.urls.items():
            self.http[name] = httpx.AsyncClient(
                base_url=url,
                headers={"Authorization": f"Bearer {self.admin}"},
                timeout=60,
                # Idle connections are dropped before uvicorn's 5 s keep-alive timeout can
                # close one under a request.
                limits=httpx.Limits(max_connections=16, keepalive_expiry=2.0),
            )
            self.limits[name] = asyncio.Semaphore(CONCURRENCY[name])
        try:
            if (await self.http["grid"].get(f"/v1/regions/{DISTRICT[0]}")).status_code == 200:
                raise DemoAlreadyLoaded(f"district {DISTRICT[0]} exists: the demo city is loaded")
            await self.load_grid()
            if "notify" in self.http:
                await self.load_departments()
            parts = []
            if "inspection" in self.http:
                parts.append(self.load_inspections())
            if "population" in self.http:
                parts.append(self.load_population())
            await asyncio.gather(*parts)
        finally:
            for client in self.http.values():
                await client.aclose()
        self.counts["seconds"] = round(time.monotonic() - self.started)
        return dict(self.counts)

    # --- HTTP helpers ---------------------------------------------------------------------

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        *,
        expect: Iterable[int] = (200, 201),
        **kw: Any,
    ) -> httpx.Response:
        async with self.limits[service]:
            attempt = 0
            while True:
                try:
                    r = await self.http[service].request(method, path, **kw)
                except httpx.TransportError:
                    # Only what is safe to send twice: reads and PUTs, keyed POSTs.
                    retry_safe = method != "POST" or "Idempotency-Key" in kw.get("headers", {})
                    attempt += 1
                    if not retry_safe or attempt == 3:
                        raise
                    await asyncio.sleep(0.5)
                    continue
                if r.status_code != 429:
                    break
                # Over a caller's write budget (a department's own token is not exempt): the
                # write was not run, so it is sent again once the budget allows.
                await asyncio.sleep(int(r.headers.get("retry-after", "1")))
        if r.status_code not in tuple(expect):
            raise DemoLoadError(f"{service} {method} {path}: {r.status_code} {r.text[:500]}")
        return r

    async def post(self, service: str, path: str, body: Any, **kw: Any) -> Any:
        return (await self.call(service, "POST", path, json=body, **kw)).json()

    async def pages(self, service: str, path: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = params | ({"cursor": cursor} if cursor else {})
            page = (await self.call(service, "GET", path, params=query)).json()
            items.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                return items

    @staticmethod
    async def each(items: Iterable[Any], fn: Callable[[Any], Awaitable[Any]]) -> list[Any]:
        return list(await asyncio.gather(*(fn(i) for i in items)))

    @staticmethod
    async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while not await check():
            if time.monotonic() > deadline:
                raise DemoLoadError(f"gave up waiting for {what}")
            await asyncio.sleep(POLL_SECONDS)

    # --- grid-svc -------------------------------------------------------------------------

    def lap(self, phase: str) -> None:
        log.info("demo: %s done after %.1f s", phase, time.monotonic() - self.started)

    async def load_grid(self) -> None:
        features = [
            {
                "type": "Feature",
                "geometry": _lists(r["boundary"]),
                "properties": {k: v for k, v in r.items() if k != "boundary"},
            }
            for r in self.city.regions
        ]
        imported = await self.post(
            "grid", "/v1/import", {"type": "FeatureCollection", "features": features}
        )
        self.counts["regions"] = imported["imported"]

        async def assign(member: dict[str, Any]) -> None:
            body = {k: v for k, v in member.items() if k != "grid_code"}
            await self.post("grid", f"/v1/grids/{member['grid_code']}/members", body)

        await self.each(self.city.members, assign)
        self.counts["members"] = len(self.city.members)
        self.lap("grid")

    # --- notify-svc -----------------------------------------------------------------------

    async def load_departments(self) -> None:
        for dept in self.city.departments:  # parents first: in order
            await self.post("notify", "/v1/departments", dept)
        self.counts["departments"] = len(self.city.departments)
        # notify-svc seeds the default routing rules itself; the demo uses them as they are.
        rules = await self.pages("notify", "/v1/routing-rules")
        self.counts["routing_rules"] = len(rules)
        self.lap("departments")

    # --- inspection-svc -------------------------------------------------------------------

    async def load_inspections(self) -> None:
        templates = {}
        for vtype in sorted({v["body"]["venue_type"] for v in self.city.venues}):
            tpl = (await self.call("inspection", "GET", f"/v1/templates/{vtype}")).json()
            templates[vtype] = [i["code"] for i in tpl["items"]]
        season = Season(self, templates)
        await self.each(self.city.venues, season.register)
        self.counts["venues"] = len(self.city.venues)
        self.counts["checkpoints"] = len(season.checkpoints)
        self.counts["secure_tags"] = sum(
            1 for cp in self.city.checkpoints if "tag_key" in cp["body"]
        )
        self.lap("venues")
        await self.each(self.city.checkpoints, season.first_round)
        self.lap("inspections")
        await season.hazard_loops()
        self.lap("hazard loops")
        self.counts["inspections"] = season.inspections
        self.counts["refused_scans"] = season.refused
        self.counts["daily_checkpoints_left_uninspected"] = sum(
            1 for cp in self.city.checkpoints if cp["script"] == "missed"
        )
        for state, n in (await season.hazard_states()).items():
            self.counts[f"hazards_{state}"] = n

    # --- population-svc -------------------------------------------------------------------

    async def load_population(self) -> None:
        city = self.city
        await self.post("population", "/v1/points/tables", city.points_table)
        for quota in city.quotas:
            await self.call("population", "PUT", "/v1/points/quotas", json=quota)
        houses: dict[str, str] = {}
        employers: dict[str, str] = {}

        async def add_house(h: dict[str, Any]) -> None:
            houses[h["key"]] = (await self.post("population", "/v1/houses", h["body"]))["id"]

        async def add_employer(e: dict[str, Any]) -> None:
            employers[e["key"]] = (await self.post("population", "/v1/employers", e["body"]))["id"]

        await asyncio.gather(
            self.each(city.houses, add_house), self.each(city.employers, add_employer)
        )
        self.counts["houses"] = len(houses)
        self.counts["dormitories"] = sum(
            1 for h in city.houses if h["body"]["use"] == "collective_dormitory"
        )
        self.counts["employers"] = len(employers)
        self.lap("houses and employers")

        async def person(p: dict[str, Any]) -> None:
            body = {k: v for k, v in p["body"].items() if v is not None}
            created = await self.post("population", "/v1/persons", body)
            pid = created["id"]
            self.counts["persons"] += 1
            if created["duplicate_candidates"]:
                self.counts["duplicate_candidates"] += 1
            if p.get("previous"):
                await self.register(
                    pid, houses[p["previous"]["house"]], p["previous"]["arrival"], p
                )
                self.counts["moves"] += 1
            if p["registered"]:
                reg = await self.register(pid, houses[p["house"]], p["arrival"], p)
                if p.get("departure"):
                    await self.post(
                        "population",
                        f"/v1/registrations/{reg}/departure",
                        {"departure_date": p["departure"]},
                        expect=(200,),
                    )
                    self.counts["departures"] += 1
            if p.get("job"):
                await self.post(
                    "population",
                    f"/v1/employers/{employers[p['job']['employer']]}/employees",
                    {"person_id": pid, "start_date": p["job"]["start_date"]},
                )
                self.counts["employees"] += 1
            if p.get("permit"):
                await self.post(
                    "population",
                    "/v1/permits",
                    {
                        "person_id": pid,
                        "evidence": p["permit"]["evidence"],
                        "issuing_authority": "深圳市公安局宝安分局",
                        "issue_date": p["permit"]["issue_date"],
                    },
                )
                self.counts["permits"] += 1
            if p.get("points"):
                await self.post(
                    "population",
                    "/v1/points/applications",
                    {
                        "person_id": pid,
                        "year": city.today.year,
                        "town_code": p["grid_code"][:9],
                        "table_version": city.points_table["version"],
                        **p["points"],
                    },
                )
                self.counts["points_applications"] += 1

        await self.each(city.persons, person)
        self.lap("persons")
        overcrowded = 0
        for h in city.houses:
            if h["body"]["use"] == "collective_dormitory":
                got = (
                    await self.call("population", "GET", f"/v1/houses/{houses[h['key']]}")
                ).json()
                overcrowded += bool(got["overcrowded_units"])
        self.counts["dormitories_overcrowded"] = overcrowded

    async def register(self, pid: str, house_id: str, arrival: str, p: dict[str, Any]) -> str:
        reg = await self.post(
            "population",
            "/v1/registrations",
            {
                "person_id": pid,
                "house_id": house_id,
                "arrival_date": arrival,
                "reason": p["reason"],
            },
        )
        self.counts["registrations"] += 1
        return str(reg["id"])


class Season:
    """The season's inspections, played now (inspection-svc accepts only fresh scans)."""

    def __init__(self, loader: Loader, templates: dict[str, list[str]]) -> None:
        self.loader = loader
        self.templates = templates
        self.checkpoints: dict[str, dict[str, Any]] = {}  # plan key -> API checkpoint
        self.venue_of: dict[str, dict[str, Any]] = {}
        self.counters: dict[str, int] = {}
        self.scans: Counter[str] = Counter()
        self.hazards: dict[str, list[str]] = {}  # checkpoint key -> hazard ids
        self.inspections = 0
        self.refused = 0
        self.gate = asyncio.Semaphore(CONCURRENCY["inspection"])

    async def register(self, venue: dict[str, Any]) -> None:
        created = await self.loader.post("inspection", "/v1/venues", venue["body"])
        if created["grid_code"] != venue["grid_code"]:
            raise DemoLoadError(f"venue {venue['key']} landed in {created['grid_code']}")
        for cp in venue["checkpoints"]:
            self.checkpoints[cp["key"]] = await self.loader.post(
                "inspection", f"/v1/venues/{created['id']}/checkpoints", cp["body"]
            )
            self.venue_of[cp["key"]] = venue
            if cp["sun_counter"] is not None:
                self.counters[cp["key"]] = cp["sun_counter"]

    async def submit(
        self, cp: dict[str, Any], fail: Iterable[str] = (), *, far: bool = False
    ) -> httpx.Response:
        # The scan is stamped when its turn comes, not while queued behind a thousand others.
        async with self.gate:
            return await self._submit(cp, fail, far)

    async def _submit(self, cp: dict[str, Any], fail: Iterable[str], far: bool) -> httpx.Response:
        api = self.checkpoints[cp["key"]]
        venue = self.venue_of[cp["key"]]
        items = self.templates[venue["body"]["venue_type"]]
        failing = set(fail)
        if not failing <= set(items):
            raise DemoLoadError(f"{sorted(failing)} are not items of {venue['body']['venue_type']}")
        self.scans[cp["key"]] += 1
        age = cp["scan_age_s"] if self.scans[cp["key"]] == 1 else 5
        lon, lat = cp["fix"]
        body: dict[str, Any] = {
            "checkpoint_id": api["id"],
            "tag_uid": api["tag_uid"],
            "scanned_at": (datetime.now(UTC) - timedelta(seconds=age)).isoformat(),
            # A "glance-and-go" attempt from the street corner, ~600 m away.
            "position": [lon + 0.006, lat] if far else [lon, lat],
            "accuracy_m": 8,
            "answers": [
                {"item_code": code, "result": "fail", "note": "现场检查不合格"}
                if code in failing
                else {"item_code": code, "result": "pass"}
                for code in items
            ],
        }
        if cp["key"] in self.counters:
            self.counters[cp["key"]] += 1  # every tag read advances its counter
            body["sun"] = sun_message(
                cp["body"]["tag_key"], api["tag_uid"], self.counters[cp["key"]]
            )
        label = f"{cp['key']}-{self.scans[cp['key']]}"
        r = await self.loader.call(
            "inspection",
            "POST",
            "/v1/inspections",
            expect=(201, 422),
            data={"inspection": json.dumps(body)},
            files=[("photos", (f"{label}.png", photo(label, self.loader.city.seed), "image/png"))],
            headers={
                **self.loader.as_inspector(venue["inspector"]),
                "Idempotency-Key": f"demo-{self.loader.city.seed}-{label}",
            },
        )
        if r.status_code == 201:
            self.inspections += 1
        elif far and r.json().get("type") == PROBLEM + "gps-too-far":
            self.refused += 1
        else:
            raise DemoLoadError(f"inspection of {cp['key']} refused: {r.text[:500]}")
        return r

    async def first_round(self, cp: dict[str, Any]) -> None:
        script = cp["script"]
        if script in ("missed", "idle"):
            return
        if script == "refused_then_pass":
            await self.submit(cp, far=True)
        if script == "hazard":
            r = await self.submit(cp, cp["hazard"]["fail"])
            self.hazards[cp["key"]] = r.json()["hazards_opened"]
        else:
            await self.submit(cp)

    async def hazard_loops(self) -> None:
        by_cp = {cp["key"]: cp for cp in self.loader.city.checkpoints}
        # 1. notify-svc routed each hazard: its case with the front-line dispatches.
        dispatches: dict[str, list[dict[str, Any]]] = {}

        async def routed(hazard_id: str) -> bool:
            if hazard_id not in dispatches:
                cases = (
                    await self.loader.call(
                        "notify", "GET", "/v1/cases", params={"source_subject": hazard_id}
                    )
                ).json()["items"]
                types = {d["department_type"] for c in cases for d in c["dispatches"]}
                if set(FRONT_LINE) <= types:
                    dispatches[hazard_id] = [d for c in cases for d in c["dispatches"]]
            return hazard_id in dispatches

        all_hazards = [(k, h) for k, ids in self.hazards.items() for h in ids]

        async def all_routed() -> bool:
            return all(await self.loader.each([h for _, h in all_hazards], routed))

        await self.loader.until(all_routed, "notify-svc to route every hazard")

        # 2. Departments acknowledge; the fixer reports the fix.
        async def act(item: tuple[str, str]) -> None:
            key, hazard_id = item
            script = by_cp[key]["hazard"]
            for d in dispatches[hazard_id]:
                if d["department_type"] in script["acks"]:
                    await self.dispatch(d, "ack")
            if script["end"] in ("rectification_reported", "closed", "open"):
                fixer = next(
                    d for d in dispatches[hazard_id] if d["department_type"] == script["fixer"]
                )
                await self.dispatch(
                    fixer, "feedback", {"result": "rectified", "note": "已整改完毕，请复查"}
                )

        await self.loader.each(all_hazards, act)

        # 3. inspection-svc has followed the dispatch events: re-inspect the reported fixes.
        reinspect = [
            k for k, ids in self.hazards.items() if by_cp[k]["hazard"]["end"] in ("closed", "open")
        ]
        waiting = {h for k in reinspect for h in self.hazards[k]}
        await self.loader.until(
            lambda: self.in_state(waiting, "rectification_reported"), "the reported fixes"
        )

        async def verify(key: str) -> None:
            cp = by_cp[key]
            still_failing = cp["hazard"]["fail"] if cp["hazard"]["end"] == "open" else []
            await self.submit(cp, still_failing)

        await self.loader.each(reinspect, verify)

        # 4. Closed hazards: every department that acted feeds back and closes its dispatch.
        async def close(item: tuple[str, str]) -> None:
            key, hazard_id = item
            script = by_cp[key]["hazard"]
            for d in dispatches[hazard_id]:
                if d["department_type"] not in script["acks"]:
                    continue
                if d["department_type"] != script["fixer"]:
                    await self.dispatch(
                        d, "feedback", {"result": "rectified", "note": "已配合复查"}
                    )
                await self.dispatch(d, "close")

        await self.loader.each(
            [i for i in all_hazards if by_cp[i[0]]["hazard"]["end"] == "closed"], close
        )

        # 5. Every hazard has reached its planned state (the last dispatch events are in).
        expected = Counter(by_cp[k]["hazard"]["end"] for k, _ in all_hazards)

        async def settled() -> bool:
            return dict(await self.hazard_states()) == dict(expected)

        await self.loader.until(settled, "hazards to reach their planned states")

    async def dispatch(self, d: dict[str, Any], action: str, body: Any = None) -> None:
        await self.loader.call(
            "notify",
            "POST",
            f"/v1/dispatches/{d['id']}/{action}",
            expect=(200,),
            json=body,
            headers=self.loader.as_department(d["department_id"]),
        )

    async def in_state(self, ids: set[str], state: str) -> bool:
        have = {
            h["id"]
            for h in await self.loader.pages("inspection", "/v1/hazards", state=state, limit=1000)
        }
        return ids <= have

    async def hazard_states(self) -> Counter[str]:
        hazards = await self.loader.pages("inspection", "/v1/hazards", limit=1000)
        return Counter(h["state"] for h in hazards)


def _lists(value: Any) -> Any:
    # shapely's mapping() gives tuples; JSON wants lists.
    if isinstance(value, (list, tuple)):
        return [_lists(v) for v in value]
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    return value
