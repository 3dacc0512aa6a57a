"""Run every benchmark in turn: ``make bench`` (or ``python -m bench [--quick]``).

Each benchmark is a module of this package that prints one JSON object; this runner prints
them as a JSON array. Extra arguments are passed to every benchmark that accepts them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = sorted(
    p.stem
    for p in Path(__file__).parent.glob("*.py")
    if p.stem not in {"__init__", "__main__", "harness", "bare_app"}
)


def main() -> int:
    quick = "--quick" in sys.argv[1:]
    results = []
    for name in BENCHMARKS:
        print(f"== bench.{name}", file=sys.stderr)
        args = [sys.executable, "-m", f"bench.{name}"]
        help_text = subprocess.run([*args, "--help"], capture_output=True, text=True).stdout
        if quick and "--quick" in help_text:
            args.append("--quick")
        done = subprocess.run(args, capture_output=True, text=True)
        sys.stderr.write(done.stderr[-2000:])
        if done.returncode != 0:
            results.append({"benchmark": name, "error": f"exit code {done.returncode}"})
            continue
        results.append(json.loads(done.stdout))
    print(json.dumps(results, indent=2, ensure_ascii=False))
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
