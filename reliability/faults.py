"""Faults, nothing lost: inject each fault while the driver's stream flows, then reconcile.

The faults, in turn: ``kill -9`` of each service (restarted at once, as a supervisor would),
the broker stopped and started, one department's webhook receiver failing, the photo
filesystem full, and (PostgreSQL run) the database server crashed and restarted. Between two
faults the stream runs undisturbed for a few seconds ("steady").

Recovery time is measured from the moment the fault is removed (process restarted, broker
started, receiver healthy, space freed, database started) until the platform works end to end
again: the affected part is back (the service's ``/readyz``; for the broker and the database,
every service's; for the receiver, its next accepted delivery; for the photo disk, the next
inspection accepted) and a hazard reported after the removal has reached notify-svc as a case.
The broker goes last: the embedded broker keeps nothing, so its restart is the hardest test of
the outbox audit, which must send again everything the broker lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from .driver import ADMIN, Driver
from .platform import Platform
from .reconcile import Finding


@dataclass
class Profile:
    name: str
    rate_per_kind: float  # writes started per second, for each of the three kinds
    steady_seconds: float  # undisturbed stream before the first and between two faults
    kill_hold_seconds: float  # stream kept running after a restart before moving on
    broker_down_seconds: float
    receiver_fail_seconds: float
    disk_full_seconds: float
    db_down_seconds: float
    write_deadline: float  # how long the app keeps retrying one write
    drain_seconds: float  # most time given for the backlog to drain before reconciling
    hazard_sites: int

    recovery_timeout: float  # a fault not recovered from by then is reported as such


QUICK = Profile("quick", 1.0, 6, 6, 5, 20, 10, 3, 60, 90, 220, 60)
FULL = Profile("full", 2.0, 20, 20, 20, 180, 60, 10, 120, 300, 2400, 300)
BROKER = "broker stop/start"


@dataclass
class FaultRun:
    name: str
    started: float = 0.0
    removed: float = 0.0
    recovered: float | None = None
    note: str = ""
    skipped: str = ""

    @property
    def recovery_s(self) -> float | None:
        return None if self.recovered is None else self.recovered - self.removed


@dataclass
class Suite:
    platform: Platform
    driver: Driver
    profile: Profile
    runs: list[FaultRun] = field(default_factory=list)

    async def run(self) -> None:
        stop = asyncio.Event()
        stream = asyncio.create_task(self._stream(stop))
        try:
            await self._steady()
            for name in ("grid-svc", "inspection-svc", "population-svc", "notify-svc"):
                await self._fault(f"kill -9 {name}", *self._kill(name))
                await self._steady()
            await self._fault("webhook receiver failing", *self._receiver())
            await self._steady()
            await self._fault("photo disk full", *self._disk())
            await self._steady()
            if self.platform.postgres:
                await self._fault("database crash/restart", *self._database())
                await self._steady()
            # Last: the memory-only broker forgets what it held; the outboxes must send it again.
            await self._fault(BROKER, *self._broker())
        finally:
            stop.set()
            await stream

    async def _stream(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            chunk = asyncio.create_task(self.driver.stream(1.0, self.profile.rate_per_kind))
            await chunk

    async def _steady(self) -> None:
        self.driver.phase = "steady (no fault)"
        await asyncio.sleep(self.profile.steady_seconds)

    async def _fault(
        self,
        name: str,
        inject: Callable[[FaultRun], Awaitable[None]],
        recovered: Callable[[float], Awaitable[bool]],
    ) -> None:
        run = FaultRun(name)
        self.runs.append(run)
        self.driver.phase = name
        run.started = time.monotonic()
        print(f"  fault: {name}", flush=True)
        await inject(run)
        if run.skipped:
            return
        deadline = run.removed + self.profile.recovery_timeout
        while time.monotonic() < deadline:
            if await recovered(run.removed) and await self._flows(run.removed):
                run.recovered = time.monotonic()
                break
            await asyncio.sleep(0.2)
        if run.recovered is None:
            run.note += f" NOT recovered within {self.profile.recovery_timeout:g}s"
        await asyncio.sleep(self.profile.kill_hold_seconds)

    async def _flows(self, removed: float) -> bool:
        """End to end again: a hazard reported after the fault was removed reached notify-svc."""
        later = [w for w in self.driver.writes if w.kind == "hazard" and w.accepted]
        later = [w for w in later if w.started >= removed and w.body.get("hazards_opened")]
        if not later:
            return False
        with contextlib.suppress(httpx.HTTPError):
            r = await self.driver.client("notify").get(
                "/v1/cases",
                params={"source_subject": later[0].body["hazards_opened"][0]},
                headers={"Authorization": f"Bearer {ADMIN}"},
            )
            return r.status_code == 200 and bool(r.json()["items"])
        return False

    # ---------------------------------------------------------------- the faults

    def _kill(self, name: str) -> tuple[Any, Any]:
        svc = self.platform.services[name]

        async def inject(run: FaultRun) -> None:
            svc.kill9()
            run.removed = time.monotonic()
            svc.start()

        async def recovered(_: float) -> bool:
            return await asyncio.to_thread(svc.ready)

        return inject, recovered

    async def _all_ready(self, _: float) -> bool:
        ready = await asyncio.gather(
            *(asyncio.to_thread(s.ready) for s in self.platform.services.values())
        )
        return all(ready)

    def _broker(self) -> tuple[Any, Any]:
        async def inject(run: FaultRun) -> None:
            await asyncio.to_thread(self.platform.restart_broker, self.profile.broker_down_seconds)
            run.removed = time.monotonic()
            run.note = f"down {self.profile.broker_down_seconds:g}s; restarted empty"

        return inject, self._all_ready

    def _receiver(self) -> tuple[Any, Any]:
        receiver = self.driver.receivers["fire-baoan"]

        async def inject(run: FaultRun) -> None:
            receiver.fail_first = 10**9  # every attempt answers 500 until reset
            await asyncio.sleep(self.profile.receiver_fail_seconds)
            receiver.fail_first = 0
            run.removed = time.monotonic()
            run.note = f"fire-baoan answers 500 for {self.profile.receiver_fail_seconds:g}s"
            if self.profile.receiver_fail_seconds < 120:
                run.note += " (shortened from several minutes: --quick)"

        before = len(receiver.accepted)

        async def recovered(_: float) -> bool:
            return len(receiver.accepted) > before  # its next delivery

        return inject, recovered

    def _disk(self) -> tuple[Any, Any]:
        async def inject(run: FaultRun) -> None:
            if not self.platform.photo_fs_mounted:
                run.skipped = "needs root to mount a small tmpfs for photos"
                return
            filled = await asyncio.to_thread(self.platform.fill_photo_fs)
            await asyncio.sleep(self.profile.disk_full_seconds)
            self.platform.free_photo_fs()
            run.removed = time.monotonic()
            run.note = f"photo tmpfs filled ({filled >> 20} MB filler) for "
            run.note += f"{self.profile.disk_full_seconds:g}s"

        async def recovered(removed: float) -> bool:
            return any(
                w.kind in ("inspection", "hazard") and w.accepted and w.started >= removed
                for w in self.driver.writes
            )

        return inject, recovered

    def _database(self) -> tuple[Any, Any]:
        pg = self.platform.postgres
        assert pg is not None

        async def inject(run: FaultRun) -> None:
            await asyncio.to_thread(pg.crash)
            await asyncio.sleep(self.profile.db_down_seconds)
            await asyncio.to_thread(pg.start)
            run.removed = time.monotonic()
            run.note = f"pg_ctl stop -m immediate, down {self.profile.db_down_seconds:g}s"

        return inject, self._all_ready


def table(runs: list[FaultRun], driver: Driver, findings: list[Finding]) -> list[dict[str, Any]]:
    """One row per fault (and one for the undisturbed stream), as printed and as JSON."""
    rows = []
    phases = [r.name for r in runs] + ["steady (no fault)", "drain"]
    by_name = {r.name: r for r in runs}
    for phase in phases:
        writes = [w for w in driver.writes if w.phase == phase]
        run = by_name.get(phase)
        if not writes and run is None:
            continue
        mine = [f for f in findings if f.phase == phase]
        rows.append(
            {
                "fault": phase,
                "requests": len(writes),
                "accepted": sum(w.accepted for w in writes),
                "refused": sum(w.outcome == "refused" for w in writes),
                "no_answer": sum(w.outcome == "no-answer" for w in writes),
                "lost": sum(f.kind == "lost" for f in mine),
                "duplicated": sum(f.kind == "duplicated" for f in mine),
                "unexpected_5xx": sum(len(w.unexpected) for w in writes),
                "unexpected_5xx_by_write": dict(
                    Counter(f"{w.kind} {code}" for w in writes for code in w.unexpected)
                ),
                "recovery_s": None if run is None else run.recovery_s,
                "refusals": _refusals(writes),
                "note": ""
                if run is None
                else (run.skipped and f"skipped: {run.skipped}") or run.note,
            }
        )
    return rows


def _refusals(writes: list[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for w in writes:
        if not w.accepted:
            label = f"{w.status or '-'} {w.slug or ''}".strip()
            out[label] = out.get(label, 0) + 1
    return out
