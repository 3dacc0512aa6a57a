"""Load held: the mobile-app mix at stepped rates, and the highest rate held within the SLO.

An open-loop generator: each request is due at a time fixed by the step's rate, whatever the
platform does, and its latency runs from that due time to the answer, so a request that
waited for one of the ``max_in_flight`` slots counts the wait (coordinated omission does not
hide queueing). Bounded: ``step_seconds`` per step, ``max_requests`` scheduled in all, each
request given up after ``timeout`` (queued or in flight), and the full profile stops
stepping up at the first saturated step; loopback only (the driver refuses anything else).
The requests are the faults driver's own builders (``reliability/driver.py``), sent once
each (no retry: what is measured is what one attempt got).

The mix, per 40 requests, as a day of the mobile apps has it (docs/reliability.md): 16 locates,
10 checkpoint inspections with a photo, 2 hazard reports (failing inspections, which reach
three departments), 3 residence registrations (a person, then the registration: 6 requests)
and the 6 acknowledgements the two hazards' 3 + 3 dispatches get from their departments.

Per step and per operation: offered and achieved rate, p50/p95/p99, errors (any answer but a
2xx, no answer, or given up). The **sustained rate** is the highest step, counting up from
the first, whose overall p99 <= 300 ms with no errors; **degrades first** is the operation
over 300 ms (or erring) from the lowest step on, in every later step too. Afterwards the
reconciliation of the faults suite checks every accepted write; the run fails on an
unexpected 5xx, a lost or a duplicated write, never on latency (the figures are reported,
not gated: CI shares its CPU).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.harness import percentile

from .driver import Driver, Write
from .platform import Platform
from .reconcile import Reconciler

SLO_P99_MS = 300.0

# Scheduled actions per cycle; acknowledgements follow the hazards' deliveries (3 each).
MIX = {"locate": 16, "inspection": 10, "hazard": 2, "registration": 3}
REQUESTS_PER_CYCLE = 16 + 10 + 2 + 3 * 2 + 2 * 3  # = 40
OPERATIONS = {  # operation -> (service, method, route template as the service's metrics name it)
    "locate": ("grid-svc", "GET", "/v1/locate"),
    "inspection": ("inspection-svc", "POST", "/v1/inspections"),  # 1 photo, all items pass
    "hazard": ("inspection-svc", "POST", "/v1/inspections"),  # 1 photo, one item fails
    "person": ("population-svc", "POST", "/v1/persons"),
    "registration": ("population-svc", "POST", "/v1/registrations"),
    "ack": ("notify-svc", "POST", "/v1/dispatches/{dispatch_id}/ack"),
}
# The labels run to the last "} " (a route template holds braces of its own).
_METRIC = re.compile(r"^gridgov_http_request_seconds_(bucket|sum|count)\{(.*)\} (\S+)$")


@dataclass
class LoadProfile:
    name: str
    rates: tuple[float, ...]  # requests per second, one step each, in order
    step_seconds: float
    max_requests: int  # scheduled over the whole run (acks follow, at most 3 per hazard)
    max_in_flight: int
    timeout: float  # a request not answered this long after it was due is given up
    workers: int  # field workers' apps (one token each)
    drain_seconds: float
    stop_saturated: bool  # stop stepping up once a step is certain to be saturated


# Saturated: p99 over ten times the SLO, or more than 1 % errors; what lies beyond only piles
# up backlog. Quick (CI) runs every step, so its checks always see the same load.
SATURATED_P99_MS = 10 * SLO_P99_MS
QUICK = LoadProfile("quick", (5, 10, 20, 40), 10, 2_000, 64, 10, 100, 60, False)
FULL = LoadProfile("full", (5, 10, 20, 40, 80, 160), 30, 20_000, 64, 10, 200, 180, True)


@dataclass
class GivenUp:
    """A request that waited longer than the timeout for a free slot: never sent."""

    kind: str
    started: float
    finished: float


@dataclass
class Step:
    rate: float
    start: float
    end: float = 0.0
    lag: list[float] = field(default_factory=list)  # how late the generator was, per tick
    cpu: dict[str, float] = field(default_factory=dict)  # % of one core, per process
    server: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.rate:g}/s"


def mix() -> Iterator[str]:
    """The mix's actions interleaved evenly (smooth weighted round robin)."""
    total = sum(MIX.values())
    credit = dict.fromkeys(MIX, 0)
    while True:
        for kind, weight in MIX.items():
            credit[kind] += weight
        kind = max(credit, key=lambda k: credit[k])
        credit[kind] -= total
        yield kind


class CpuMeter:
    """CPU seconds of the platform's processes (and the generator's own) from /proc."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.tick = os.sysconf("SC_CLK_TCK")

    def _stat(self, pid: int) -> list[str]:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()  # fields from the 3rd (state) on

    def _seconds(self, pid: int) -> float:
        fields = self._stat(pid)
        return (int(fields[11]) + int(fields[12])) / self.tick  # utime + stime

    def sample(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, svc in self.platform.services.items():
            if svc.process is not None:
                with contextlib.suppress(OSError):
                    out[name] = self._seconds(svc.process.pid)
        if self.platform.broker.process is not None:
            with contextlib.suppress(OSError):
                out["broker"] = self._seconds(self.platform.broker.process.pid)
        if self.platform.postgres is not None:
            with contextlib.suppress(OSError, ValueError):
                out["postgres"] = self._postgres()
        times = os.times()
        out["generator"] = times.user + times.system
        return out

    def _postgres(self) -> float:
        """The postmaster and its children (the backends serving the services)."""
        assert self.platform.postgres is not None
        pid_file = self.platform.postgres.data / "postmaster.pid"
        master = int(pid_file.read_text().split()[0])
        total = self._seconds(master)
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError, IndexError):
                    fields = self._stat(int(entry))
                    if int(fields[1]) == master:
                        total += (int(fields[11]) + int(fields[12])) / self.tick
        return total


class ServerClock:
    """The services' own request-time histograms (``/metrics``), to tell time spent in a
    handler from time spent waiting in front of it."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    async def sample(self) -> dict[tuple[str, str, str], dict[str, Any]]:
        out: dict[tuple[str, str, str], dict[str, Any]] = {}
        async with httpx.AsyncClient(timeout=10) as http:
            for svc in self.platform.services.values():
                with contextlib.suppress(httpx.HTTPError):
                    text = (await http.get(f"{svc.url}/metrics")).text
                    for line in text.splitlines():
                        m = _METRIC.match(line)
                        if not m:
                            continue
                        labels = dict(re.findall(r'(\w+)="([^"]*)"', m[2]))
                        key = (labels["service"], labels["method"], labels["route"])
                        h = out.setdefault(key, {"count": 0.0, "sum": 0.0, "buckets": {}})
                        if m[1] == "bucket":
                            h["buckets"][float(labels["le"])] = float(m[3])
                        else:
                            h[m[1]] = float(m[3])
        return out

    @staticmethod
    def during(
        before: dict[tuple[str, str, str], dict[str, Any]],
        after: dict[tuple[str, str, str], dict[str, Any]],
    ) -> dict[tuple[str, str, str], dict[str, Any]]:
        """Per route: requests, mean, and the bucket bound the p99 lies under (ms)."""
        out = {}
        for key, h in after.items():
            b = before.get(key, {"count": 0.0, "sum": 0.0, "buckets": {}})
            n = h["count"] - b["count"]
            if n <= 0:
                continue
            p99 = None
            for le in sorted(h["buckets"]):
                if h["buckets"][le] - b["buckets"].get(le, 0.0) >= 0.99 * n:
                    p99 = le * 1e3
                    break
            out[key] = {
                "requests": int(n),
                "mean_ms": round((h["sum"] - b["sum"]) / n * 1e3, 1),
                "p99_ms_at_most": p99,  # None: beyond the largest bucket (10 s)
            }
        return out


class LoadRun:
    def __init__(
        self, driver: Driver, profile: LoadProfile, cpu: CpuMeter, server: ServerClock
    ) -> None:
        self.driver = driver
        self.profile = profile
        self.cpu = cpu
        self.server = server
        self.steps: list[Step] = []
        self.given_up: list[GivenUp] = []
        self._mix = mix()

    async def run(self) -> None:
        for rate in self.profile.rates:
            before, served = self.cpu.sample(), await self.server.sample()
            step = Step(rate, time.monotonic())
            self.steps.append(step)
            self.driver.phase = f"load {step.name}"
            await self._offer(step)
            step.end = time.monotonic()
            after = self.cpu.sample()
            step.server = ServerClock.during(served, await self.server.sample())
            wall = step.end - step.start
            step.cpu = {k: 100 * (after[k] - v) / wall for k, v in before.items() if k in after}
            p99, errors = self._floor(step)
            saturated = p99 > SATURATED_P99_MS or errors > 0.01 * self._scheduled(step)
            print(
                f"  step {step.name}: {self._scheduled(step)} requests, p99 >= {p99:.0f} ms, "
                f"{errors} errors so far" + (", saturated" if saturated else ""),
                flush=True,
            )
            if (saturated and self.profile.stop_saturated) or self._budget_spent():
                break
        self.driver.phase = "drain"

    def _budget_spent(self) -> bool:
        return len(self.driver.writes) + len(self.given_up) >= self.profile.max_requests

    def _scheduled(self, step: Step) -> int:
        return len(self.requests(step))

    async def _offer(self, step: Step) -> None:
        interval = REQUESTS_PER_CYCLE / (sum(MIX.values()) * step.rate)  # between actions
        end = step.start + self.profile.step_seconds
        n = 0
        while not self._budget_spent():
            due = step.start + n * interval
            if due >= end:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            step.lag.append(time.monotonic() - due)
            self._launch(next(self._mix), due)
            self.driver.ack_new_deliveries()
            n += 1
        await asyncio.sleep(max(0.0, end - time.monotonic()))

    def _launch(self, kind: str, due: float) -> None:
        d = self.driver

        async def request() -> None:
            if time.monotonic() - due > self.profile.timeout:  # the app has given up
                self.given_up.append(GivenUp(kind, due, time.monotonic()))
                return
            if kind == "locate":
                await d.locate(at=due)
            elif kind in ("inspection", "hazard"):
                await d.inspection(fail=kind == "hazard", at=due)
            else:
                await d.registration(at=due)

        d.spawn(request())

    def requests(self, step: Step | None) -> list[Write | GivenUp]:
        """The requests due in a step's window (None: those due after the last step)."""
        items: list[Write | GivenUp] = [*self.driver.writes, *self.given_up]
        if step is None:
            last = self.steps[-1].end if self.steps else 0.0
            return [r for r in items if r.started >= last]
        end = step.end or float("inf")
        return [r for r in items if step.start <= r.started < end]

    def _floor(self, step: Step) -> tuple[float, int]:
        """The step's p99 and errors so far: a floor (the unanswered count with their age)."""
        now = time.monotonic()
        mine = self.requests(step)
        lat = [((r.finished or now) - r.started) * 1e3 for r in mine]
        errors = sum(1 for r in mine if r.finished is not None and not _ok(r))
        return (percentile(lat, 0.99) if lat else 0.0), errors

    # ------------------------------------------------------------------------- figures

    def figures(self) -> list[dict[str, Any]]:
        rows = []
        for step in self.steps:
            mine = self.requests(step)
            wall = self.profile.step_seconds
            ops = {}
            for op, key in OPERATIONS.items():
                ops[op] = _stats([r for r in mine if _op(r) == op], wall, step)
                # inspections and hazards share one route, so they share these figures
                ops[op]["server"] = step.server.get(key)
            rows.append(
                {
                    "step": step.name,
                    "target_rate": step.rate,
                    "all": _stats(mine, wall, step),
                    "operations": {k: v for k, v in ops.items() if v["requests"]},
                    "generator_lag_ms": {
                        "p99": round(percentile(step.lag, 0.99) * 1e3, 1) if step.lag else None,
                        "max": round(max(step.lag) * 1e3, 1) if step.lag else None,
                    },
                    "cpu_percent_of_one_core": {k: round(v) for k, v in step.cpu.items()},
                }
            )
        return rows


def _op(r: Write | GivenUp) -> str:
    return "person" if r.kind == "registration" and isinstance(r, GivenUp) else r.kind


def _ok(r: Write | GivenUp) -> bool:
    return isinstance(r, Write) and r.accepted


def _status(r: Write | GivenUp) -> str:
    if isinstance(r, GivenUp):
        return "given up (queued)"
    if r.finished is None:
        return "unfinished"
    if r.last_status is None:
        return r.error or "no answer"
    return str(r.last_status)


def _stats(items: list[Write | GivenUp], wall: float, step: Step) -> dict[str, Any]:
    done = [r for r in items if r.finished is not None]
    lat = [(r.finished - r.started) * 1e3 for r in done if r.finished is not None]
    ok = sum(1 for r in items if _ok(r))
    last = max((r.finished for r in done if r.finished is not None), default=step.start)
    return {
        "requests": len(items),
        "offered_per_s": round(len(items) / wall, 1),
        "achieved_per_s": round(ok / max(wall, last - step.start), 1),
        "ok": ok,
        "errors": len(items) - ok,
        "statuses": dict(sorted(Counter(_status(r) for r in items).items())),
        "p50_ms": round(percentile(lat, 0.50), 1) if lat else None,
        "p95_ms": round(percentile(lat, 0.95), 1) if lat else None,
        "p99_ms": round(percentile(lat, 0.99), 1) if lat else None,
        "max_ms": round(max(lat), 1) if lat else None,
    }


def _within(s: dict[str, Any]) -> bool:
    return s["errors"] == 0 and s["p99_ms"] is not None and s["p99_ms"] <= SLO_P99_MS


def verdict(rows: list[dict[str, Any]]) -> tuple[float | None, dict[str, Any] | None]:
    """(sustained rate, where it degrades first) from the per-step figures.

    Degrades first: the operation over the SLO from the lowest step on, in every step after it
    too, so one slow outlier among a few dozen requests (their p99 is about their maximum) on
    a shared machine does not name it; ties go to the higher p99 at that step.
    """
    sustained = None
    for row in rows:
        if not _within(row["all"]):
            break
        sustained = row["target_rate"]
    first: dict[str, int] = {}  # operation -> index of the step from which on it stays over
    for op in OPERATIONS:
        over = [i for i, row in enumerate(rows) if op in row["operations"]]
        over = [i for i in over if not _within(rows[i]["operations"][op])]
        for i in over:
            later = [j for j, row in enumerate(rows) if j >= i and op in row["operations"]]
            if set(later) <= set(over):
                first[op] = i
                break
    if not first:
        return sustained, None
    at = min(first.values())
    row = rows[at]
    ops = {op: row["operations"][op] for op, i in first.items() if i == at}
    op, st = max(ops.items(), key=lambda kv: (kv[1]["p99_ms"] or 0, kv[1]["errors"]))
    return sustained, {
        "step": row["step"],
        "operation": op,
        "service": OPERATIONS[op][0],
        "p99_ms": st["p99_ms"],
        "errors": st["errors"],
        "requests": st["requests"],
        "then": [  # the others in the order they follow
            {"operation": k, "from_step": rows[i]["step"]}
            for k, i in sorted(first.items(), key=lambda kv: kv[1])
            if k != op
        ],
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    profile = QUICK if args.quick else FULL
    root = Path(tempfile.mkdtemp(prefix="gridgov-load-"))
    platform = Platform(root, args.database)
    started = time.monotonic()
    load_before = _loadavg()
    print(f"reliability/load: profile {profile.name}, {args.database}, work dir {root}")
    try:
        await asyncio.to_thread(platform.start)
        urls = {n.removesuffix("-svc"): s.url for n, s in platform.services.items()}
        driver = Driver(
            urls,
            write_deadline=0,  # one attempt each: the measurement
            max_in_flight=profile.max_in_flight,
            workers=profile.workers,
            timeout=profile.timeout,
        )
        hazards = sum(profile.rates) * profile.step_seconds * MIX["hazard"] / REQUESTS_PER_CYCLE
        async with contextlib.AsyncExitStack() as stack:
            for receiver in driver.receivers.values():
                await stack.enter_async_context(receiver.serve())
            await driver.setup(hazard_sites=int(hazards * 1.1) + 5, pass_sites=40)
            print(f"  platform up and seeded in {time.monotonic() - started:.0f}s", flush=True)
            load = LoadRun(driver, profile, CpuMeter(platform), ServerClock(platform))
            await load.run()
            reconciler = Reconciler(driver)
            drained = await reconciler.wait_for_quiet(profile.drain_seconds)
            print(f"  drained in {drained:.0f}s; reconciling", flush=True)
            findings = await reconciler.run()
            await driver.close()
        rows = load.figures()
        sustained, degrades = verdict(rows)
        drain = _stats(load.requests(None), profile.drain_seconds, Step(0, load.steps[-1].end))
        unexpected = Counter(f"{w.kind} {c}" for w in driver.writes for c in w.unexpected)
        lost = sum(f.kind == "lost" for f in findings)
        duplicated = sum(f.kind == "duplicated" for f in findings)
        throttled = sum(1 for w in driver.writes if w.last_status == 429)
        summary = {
            "ok": not unexpected and lost == 0 and duplicated == 0,
            "profile": profile.name,
            "database": args.database,
            "slo": f"p99 <= {SLO_P99_MS:g} ms, no errors",
            "sustained_rate_per_s": sustained,
            "degrades_first": degrades,
            "steps": rows,
            "after_the_last_step": drain,
            "unexpected_5xx": dict(unexpected),
            "throttled_429": throttled,
            "lost": lost,
            "duplicated": duplicated,
            "stored_without_2xx": sum(f.kind == "stored-without-2xx" for f in findings),
            "checked": dict(reconciler.counts),
            "findings": [f.__dict__ for f in findings[:100]],
            "load_average": {"before": load_before, "after": _loadavg()},
            "cpus": os.cpu_count(),
            "seconds": round(time.monotonic() - started, 1),
            "work_dir": str(root) if args.keep else None,
        }
        _print(summary)
        return summary
    finally:
        platform.stop()  # blocking on purpose: it must finish even while being cancelled
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def _loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


COLUMNS = [
    ("step", 7),
    ("operation", 12),
    ("service", 14),
    ("offered/s", 9),
    ("achieved/s", 10),
    ("requests", 8),
    ("errors", 6),
    ("p50_ms", 7),
    ("p95_ms", 7),
    ("p99_ms", 7),
    ("server_mean", 11),
    ("server_p99<=", 12),
]


def _print(s: dict[str, Any]) -> None:
    head = " | ".join(f"{name:<{w}}" for name, w in COLUMNS)
    print("\n" + head + "\n" + "-" * len(head))
    for row in s["steps"]:
        lines = [("all", "", row["all"])]
        lines += [(op, OPERATIONS[op][0], st) for op, st in row["operations"].items()]
        for n, (op, svc, st) in enumerate(lines):
            cells = [row["step"] if n == 0 else "", op, svc]
            cells += [st["offered_per_s"], st["achieved_per_s"], st["requests"], st["errors"]]
            cells += [st["p50_ms"], st["p95_ms"], st["p99_ms"]]
            srv = st.get("server") or {}
            cells += [srv.get("mean_ms"), srv.get("p99_ms_at_most")]
            print(
                " | ".join(
                    f"{'-' if v is None else v!s:<{w}}"
                    for v, (_, w) in zip(cells, COLUMNS, strict=True)
                )
            )
        cpu = ", ".join(f"{k} {v}" for k, v in row["cpu_percent_of_one_core"].items())
        print(f"{'':7} | cpu % of one core: {cpu}; generator lag p99 "
              f"{row['generator_lag_ms']['p99']} ms")  # fmt: skip
        odd = {op: st["statuses"] for op, st in row["operations"].items() if st["errors"]}
        if odd:
            print(f"{'':7} | answers of the erring operations: {odd}")
    print()
    d = s["degrades_first"]
    print(f"  sustained rate (p99 <= {SLO_P99_MS:g} ms, no errors): {s['sustained_rate_per_s']}/s")
    if d:
        then = ", ".join(f"{t['operation']} from {t['from_step']}" for t in d["then"])
        print(
            f"  degrades first: {d['operation']} ({d['service']}), over the SLO from {d['step']} "
            f"on (p99 {d['p99_ms']} ms of {d['requests']}, {d['errors']} errors)"
            + (f"; then {then}" if then else "")
        )
    else:
        print("  degrades first: not reached at the highest step")
    if s["throttled_429"]:
        print(
            f"  {s['throttled_429']} answers were 429 (over a caller's write budget); the services"
            " take GRIDGOV_RATE_LIMIT_* from this environment (docs/reliability.md)"
        )
    print(
        f"  reconciled: {s['checked']}; lost {s['lost']}, duplicated {s['duplicated']}, "
        f"unexpected 5xx {s['unexpected_5xx'] or 0}; load average {s['load_average']}"
    )
    for f in s["findings"][:20]:
        print(f"  {f['kind']:<20} [{f['phase']}] {f['what']}")
    print()
