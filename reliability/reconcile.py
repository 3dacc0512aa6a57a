"""Reconciliation: what the driver was told (2xx) against what the platform holds, through
the public APIs only.

- every accepted write is stored: each inspection, hazard, person, registration and
  acknowledgement that got a 2xx can be read back;
- no duplicates: one stored inspection per accepted upload (matched by its scan time at its
  checkpoint), one registration per person, one case per hazard, one dispatch per
  hazard × department, one delivery per dispatch (a redelivery under the same webhook-id is
  counted apart: a receiver drops it by id, as Standard Webhooks intends);
- every event consumed exactly once in effect: each accepted hazard has its case and its three
  dispatches in notify-svc and is at least "dispatched" in inspection-svc; each accepted
  acknowledgement moved its hazard on to "acknowledged" (or later);
- every dispatch is delivered (its receiver has it, and the dispatch says so with its
  ``delivered_at``) or visibly failed (``failed_at``).

A finding is attributed to the phase in which its write was started.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from .driver import ADMIN, DEPARTMENTS, Driver, Write

HAZARD_ORDER = ["open", "dispatched", "acknowledged", "rectification_reported", "closed"]


@dataclass
class Finding:
    phase: str
    kind: str  # lost, duplicated, stored-without-2xx, redelivered
    what: str


def _behind(state: str, want: str) -> bool:
    return state in HAZARD_ORDER and HAZARD_ORDER.index(state) < HAZARD_ORDER.index(want)


class Reconciler:
    def __init__(self, driver: Driver, catch_up_seconds: float = 60.0) -> None:
        self.d = driver
        self.catch_up_seconds = catch_up_seconds
        self.findings: list[Finding] = []
        self.counts: Counter[str] = Counter()

    def _find(self, w: Write, kind: str, what: str) -> None:
        self.findings.append(Finding(w.phase, kind, f"{w.kind} {what}"))

    async def _get(self, service: str, path: str, **params: Any) -> httpx.Response:
        for _ in range(20):
            try:
                r = await self.d.client(service).get(
                    path, params=params or None, headers={"Authorization": f"Bearer {ADMIN}"}
                )
                if r.status_code < 500:
                    return r
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.5)
        raise RuntimeError(f"{service} {path}: no answer while reconciling")

    async def _all(self, service: str, path: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = (await self._get(service, path, limit=100, cursor=cursor, **params)).json()
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return items

    def accepted(self, *kinds: str) -> list[Write]:
        return [w for w in self.d.writes if w.kind in kinds and w.accepted]

    async def wait_for_quiet(self, timeout: float) -> float:
        """Let the event pipeline drain: every accepted hazard has its dispatches and each
        dispatch is delivered or failed, and acks keep flowing. Returns the seconds taken."""
        start = time.monotonic()
        expected = len(self.accepted("hazard")) * len(DEPARTMENTS)
        while True:
            self.d.ack_new_deliveries()
            dispatches = await self._all("notify", "/v1/dispatches")
            open_ = [x for x in dispatches if not (x["delivered_at"] or x["failed_at"])]
            if len(dispatches) >= expected and not open_ and not self.d.in_flight:
                break
            if time.monotonic() - start > timeout:
                print(
                    f"  not quiet after {timeout:g}s: {len(dispatches)} of {expected} dispatches, "
                    f"{len(open_)} neither delivered nor failed, {self.d.in_flight} in flight"
                )
                break
            await asyncio.sleep(1.0)
        await self.d.settle(self.d.write_deadline)
        return time.monotonic() - start

    async def run(self) -> list[Finding]:
        await self._inspections()
        await self._registrations()
        await self._events()
        return self.findings

    async def _inspections(self) -> None:
        writes = [w for w in self.d.writes if w.kind in ("inspection", "hazard")]
        for w in writes:
            if w.accepted:
                r = await self._get("inspection", f"/v1/inspections/{w.body['id']}")
                self.counts["inspections checked"] += 1
                if r.status_code != 200:
                    self._find(w, "lost", f"{w.body['id']} answered {r.status_code}")
        by_scan: dict[tuple[str, datetime], Write] = {
            (w.meta["checkpoint_id"], datetime.fromisoformat(w.meta["scanned_at"])): w
            for w in writes
        }
        stored: Counter[tuple[str, datetime]] = Counter()
        for cp in {w.meta["checkpoint_id"] for w in writes}:
            for item in await self._all("inspection", "/v1/inspections", checkpoint_id=cp):
                stored[(cp, datetime.fromisoformat(item["scanned_at"]))] += 1
        for key, n in stored.items():
            w = by_scan.get(key)
            if w is None:
                continue  # not one of the driver's (none other are made)
            if n > 1:
                self._find(w, "duplicated", f"stored {n} times (key {w.key})")
            if not w.accepted:
                self._find(w, "stored-without-2xx", f"answered {w.status} {w.slug}")

    async def _registrations(self) -> None:
        for w in self.accepted("person"):
            r = await self._get("population", f"/v1/persons/{w.body['id']}")
            self.counts["persons checked"] += 1
            if r.status_code != 200:
                self._find(w, "lost", f"{w.body['id']} answered {r.status_code}")
        regs = {w.meta["person_id"]: w for w in self.d.writes if w.kind == "registration"}
        for person_id, w in regs.items():
            r = await self._get("population", f"/v1/persons/{person_id}/registrations")
            body = r.json()
            items = body["items"] if isinstance(body, dict) else body
            self.counts["registrations checked"] += 1
            if w.accepted and w.body["id"] not in {i["id"] for i in items}:
                self._find(w, "lost", f"{w.body['id']} not among the person's registrations")
            if len(items) > 1:
                self._find(w, "duplicated", f"{len(items)} registrations for one arrival")
            if items and not w.accepted:
                self._find(w, "stored-without-2xx", f"answered {w.status} {w.slug}")

    async def _events(self) -> None:
        dispatches = await self._all("notify", "/v1/dispatches")
        by_case: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for x in dispatches:
            by_case[x["case_id"]].append(x)
        delivered: dict[str, set[str]] = defaultdict(set)  # dispatch id -> webhook ids
        redelivered = 0
        for receiver in self.d.receivers.values():
            ids = Counter(a["id"] for a in receiver.accepted)
            redelivered += sum(n - 1 for n in ids.values())
            for a in receiver.accepted:
                delivered[a["dispatch"]["id"]].add(a["id"])
        self.counts["deliveries redelivered under the same webhook-id"] = redelivered
        acked = {w.meta["dispatch_id"]: w for w in self.accepted("ack")}
        behind: list[tuple[Write, str, str]] = []  # the write to blame, hazard, state wanted
        for w in self.accepted("ack"):
            r = await self._get("notify", f"/v1/dispatches/{w.meta['dispatch_id']}")
            self.counts["acks checked"] += 1
            if r.status_code != 200 or not r.json().get("acknowledged_at"):
                self._find(w, "lost", f"dispatch {w.meta['dispatch_id']} not acknowledged")
        for w in self.accepted("hazard"):
            opened = w.body.get("hazards_opened") or []
            if len(opened) != 1:
                self._find(w, "lost", f"opened {opened!r}, expected one hazard")
                continue
            hazard_id = opened[0]
            self.counts["hazards checked"] += 1
            h = await self._get("inspection", f"/v1/hazards/{hazard_id}")
            if h.status_code != 200:
                self._find(w, "lost", f"hazard {hazard_id} answered {h.status_code}")
                continue
            cases = (await self._get("notify", "/v1/cases", source_subject=hazard_id)).json()
            cases = cases["items"]
            if not cases:
                self._find(w, "lost", f"hazard {hazard_id}: event never became a case")
                continue
            if len(cases) > 1:
                self._find(w, "duplicated", f"hazard {hazard_id}: {len(cases)} cases")
            mine = [x for c in cases for x in by_case[c["id"]]]
            per_dept = Counter(x["department_id"] for x in mine)
            for dept in DEPARTMENTS:
                if per_dept[dept] == 0:
                    self._find(w, "lost", f"hazard {hazard_id}: no dispatch to {dept}")
                elif per_dept[dept] > 1:
                    self._find(w, "duplicated", f"hazard {hazard_id}: {per_dept[dept]} to {dept}")
            for x in mine:
                self.counts["dispatches checked"] += 1
                if len(delivered[x["id"]]) > 1:
                    self._find(w, "duplicated", f"dispatch {x['id']} delivered as two webhooks")
                if not delivered[x["id"]] and not x["failed_at"]:
                    self._find(w, "lost", f"dispatch {x['id']} neither delivered nor failed")
                if delivered[x["id"]] and not x["delivered_at"]:
                    self._find(w, "lost", f"dispatch {x['id']} delivered, but not recorded so")
            want = "acknowledged" if any(x["id"] in acked for x in mine) else "dispatched"
            if mine and _behind(h.json()["state"], want):
                ack = next((acked[x["id"]] for x in mine if x["id"] in acked), w)
                behind.append((ack, hazard_id, want))
        await self._hazards_caught_up(behind)

    async def _hazards_caught_up(self, behind: list[tuple[Write, str, str]]) -> None:
        """Hazards whose state in inspection-svc is behind what notify-svc did: inspection-svc
        may still be reading notify.v1 again after a broker restart (the replay holds the
        last hour). What has not caught up within ``catch_up_seconds`` is lost."""
        start = time.monotonic()
        states: dict[str, str] = {}
        while behind:
            states = {
                hazard_id: (await self._get("inspection", f"/v1/hazards/{hazard_id}")).json()[
                    "state"
                ]
                for _, hazard_id, _ in behind
            }
            behind = [b for b in behind if _behind(states[b[1]], b[2])]
            if not behind or time.monotonic() - start > self.catch_up_seconds:
                break
            await asyncio.sleep(1.0)
        self.counts["seconds for inspection-svc to catch up"] = round(time.monotonic() - start)
        for ack, hazard_id, want in behind:
            self._find(ack, "lost", f"hazard {hazard_id} is {states[hazard_id]}, expected {want}")
