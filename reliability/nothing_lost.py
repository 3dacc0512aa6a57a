"""The "faults, nothing lost" module: platform up, stream + faults, drain, reconcile, table."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from .driver import Driver
from .faults import FULL, QUICK, Suite, table
from .platform import Platform
from .reconcile import Reconciler

COLUMNS = [
    ("fault", 26),
    ("requests", 8),
    ("accepted", 8),
    ("refused", 7),
    ("no_answer", 9),
    ("lost", 4),
    ("duplicated", 10),
    ("recovery_s", 10),
]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    profile = QUICK if args.quick else FULL
    root = Path(tempfile.mkdtemp(prefix="gridgov-reliability-"))
    platform = Platform(root, args.database)
    started = time.monotonic()
    print(f"reliability/faults: profile {profile.name}, {args.database}, work dir {root}")
    try:
        await asyncio.to_thread(platform.start)
        urls = {n.removesuffix("-svc"): s.url for n, s in platform.services.items()}
        driver = Driver(urls, write_deadline=profile.write_deadline)
        async with contextlib.AsyncExitStack() as stack:
            for receiver in driver.receivers.values():
                await stack.enter_async_context(receiver.serve())
            await driver.setup(hazard_sites=profile.hazard_sites)
            print(f"  platform up and seeded in {time.monotonic() - started:.0f}s")
            suite = Suite(platform, driver, profile)
            await suite.run()
            driver.phase = "drain"
            reconciler = Reconciler(driver)
            drained = await reconciler.wait_for_quiet(profile.drain_seconds)
            print(f"  drained in {drained:.0f}s; reconciling")
            findings = await reconciler.run()
            await driver.close()
        rows = table(suite.runs, driver, findings)
        _print(rows)
        lost = sum(r["lost"] for r in rows)
        duplicated = sum(r["duplicated"] for r in rows)
        unexpected = sum(r["unexpected_5xx"] for r in rows)
        for f in findings[:40]:
            print(f"  {f.kind:<20} [{f.phase}] {f.what}")
        return {
            "ok": lost == 0 and duplicated == 0,
            "profile": profile.name,
            "database": args.database,
            "broker": "embedded Tansu 0.6.0, memory:// storage (the outbox audit replays its loss)",
            "seconds": round(time.monotonic() - started, 1),
            "lost": lost,
            "duplicated": duplicated,
            "unexpected_5xx": unexpected,
            "stored_without_2xx": sum(f.kind == "stored-without-2xx" for f in findings),
            "checked": dict(reconciler.counts),
            "faults": rows,
            "findings": [f.__dict__ for f in findings[:200]],
            "work_dir": str(root) if args.keep else None,
        }
    finally:
        platform.stop()  # blocking on purpose: it must finish even while being cancelled
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def _print(rows: list[dict[str, Any]]) -> None:
    head = " | ".join(f"{name:<{w}}" for name, w in COLUMNS)
    print("\n" + head + "\n" + "-" * len(head))
    for r in rows:
        cells = []
        for name, w in COLUMNS:
            v = r[name]
            v = "-" if v is None else f"{v:.1f}" if isinstance(v, float) else v
            cells.append(f"{v!s:<{w}}")
        print(" | ".join(cells))
    print()
    for r in rows:
        if r["note"] or r["refusals"] or r["unexpected_5xx"]:
            unexpected = r["unexpected_5xx_by_write"]
            print(f"  {r['fault']}: {r['note']}  {r['refusals'] or ''}")
            if unexpected:
                print(f"    unexpected 5xx answers (retried): {unexpected}")
    print()
