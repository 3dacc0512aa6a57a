"""Run the reliability suite: ``python -m reliability [MODULE ...] [--quick] [--database DB]``.

Modules: ``faults`` (faults, nothing lost), ``load`` (load held); all of them by default.
Prints a table per module and one JSON summary on stdout; exits 1 if anything was lost or
duplicated, a 5xx was unexpected (or a module could not run), 0 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Callable
from typing import Any

from . import load, nothing_lost

# name -> async function(args) returning a JSON-able summary with an "ok" field.
MODULES: dict[str, Callable[[argparse.Namespace], Any]] = {
    "faults": nothing_lost.run,
    "load": load.run,
}


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability", description=__doc__)
    parser.add_argument("modules", nargs="*", metavar="MODULE", help=", ".join(MODULES))
    parser.add_argument("--quick", action="store_true", help="the CI profile (~6 min on 2 cores)")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--module", choices=sorted(MODULES), action="append")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args(argv)
    chosen = [*args.modules, *(args.module or [])] or list(MODULES)
    for name in chosen:
        if name not in MODULES:
            parser.error(f"unknown module {name!r} (choose from {', '.join(MODULES)})")
    # SIGTERM (CI's timeout) unwinds like Ctrl-C, so children stop and the tmpfs is unmounted.
    signal.signal(signal.SIGTERM, _interrupt)
    summary: dict[str, Any] = {}
    for name in dict.fromkeys(chosen):
        summary[name] = asyncio.run(MODULES[name](args))
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 0 if all(s.get("ok") for s in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
