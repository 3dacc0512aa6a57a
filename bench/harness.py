"""Small helpers shared by the benchmarks in bench/: stats, JSON output, uvicorn subprocesses
and a bounded HTTP/1.1 load generator.

The load generator speaks raw HTTP/1.1 keep-alive over asyncio streams rather than going
through an HTTP client library: on a small machine the client shares the CPU with the server,
and a heavyweight client would measure itself. It only talks to loopback and always stops
after ``max_requests`` or ``max_seconds``, whichever comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from gridgov_common import embedded

ROOT = Path(__file__).resolve().parents[1]  # the repository root (holds bench/)
LOOPBACK = "127.0.0.1"

# Identical server options for every app a benchmark compares (one worker, one loop).
UVICORN_OPTIONS: tuple[str, ...] = (
    "--workers",
    "1",
    "--loop",
    "uvloop",
    "--http",
    "httptools",
    "--no-access-log",
    "--log-level",
    "warning",
    "--timeout-keep-alive",
    "60",
)

T = TypeVar("T")
_STARTED = time.monotonic()


# --------------------------------------------------------------------------------------------
# Output and statistics
# --------------------------------------------------------------------------------------------


def log(message: str) -> None:
    """Progress goes to stderr, so stdout carries only the result."""
    print(f"[{time.monotonic() - _STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile, q in [0, 1]; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))])


def latency_summary(seconds: Sequence[float], scale: float = 1e3) -> dict[str, float]:
    """p50/p90/p99/max/mean of durations given in seconds, times ``scale`` (ms by default)."""
    if not seconds:
        return {}
    return {
        "p50": percentile(seconds, 0.50) * scale,
        "p90": percentile(seconds, 0.90) * scale,
        "p99": percentile(seconds, 0.99) * scale,
        "max": max(seconds) * scale,
        "mean": sum(seconds) / len(seconds) * scale,
    }


def tidy(value: Any) -> Any:
    """Round floats to ~6 significant digits (NaN/inf -> None) throughout a JSON-like value."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        if value == 0:
            return 0.0
        return round(value, max(0, 5 - math.floor(math.log10(abs(value)))))
    if isinstance(value, Mapping):
        return {str(k): tidy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [tidy(v) for v in value]
    return value


def emit(result: Mapping[str, Any]) -> None:
    """The benchmark's single JSON object on stdout."""
    sys.stdout.write(json.dumps(tidy(result), indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def check(value: float | None, target: float, *, unit: str = "") -> dict[str, Any]:
    """A ``value >= target`` entry for the result's targets section (pass None if unmeasured)."""
    ok = None if value is None or not math.isfinite(value) else value >= target
    return {"value": value, "target": f">= {target:g}{unit}", "pass": ok}


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), its threads included."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int | str = "self") -> int:
    """Resident set size of a process from /proc (Linux), without psutil."""
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on uvloop when it is installed (it is what the servers run on, too)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def terminate_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt so ``finally`` blocks clean up children."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


# --------------------------------------------------------------------------------------------
# A uvicorn server as a child process
# --------------------------------------------------------------------------------------------


class UvicornProcess(embedded.UvicornProcess):
    """``with UvicornProcess("pkg.mod:app", env={...}) as server: ... server.port``.

    The shared child-process server (:class:`gridgov_common.embedded.UvicornProcess`) with
    :data:`UVICORN_OPTIONS` and the repository root as app dir (for ``bench.bare_app``):
    ready on entry (or after ``start().wait_ready()``), stopped (TERM, then KILL) on exit.
    """

    def __init__(
        self,
        app: str,
        *,
        env: Mapping[str, str] | None = None,
        ready_path: str = "/readyz",
        ready_timeout: float = 120.0,
        log_path: Path | None = None,
        app_dir: Path = ROOT,
        options: Sequence[str] = UVICORN_OPTIONS,
    ) -> None:
        super().__init__(
            app,
            env=env,
            cwd=app_dir,
            log_path=log_path,
            options=("--app-dir", str(app_dir), *options),
            ready_path=ready_path,
            ready_timeout=ready_timeout,
        )

    def rss_bytes(self) -> int:
        assert self.process is not None
        return rss_bytes(self.process.pid)


# --------------------------------------------------------------------------------------------
# Bounded HTTP/1.1 load generator (loopback only)
# --------------------------------------------------------------------------------------------


def http_get(path: str, port: int, headers: Mapping[str, str] | None = None) -> bytes:
    """A raw keep-alive GET request for :func:`http_load`."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {LOOPBACK}:{port}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class LoadResult:
    concurrency: int
    seconds: float = 0.0
    errors: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # seconds, completed requests only

    @property
    def completed(self) -> int:
        return len(self.latencies)

    @property
    def requests_per_s(self) -> float:
        return self.completed / self.seconds if self.seconds > 0 else math.nan

    def summary(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "requests": self.completed,
            "errors": self.errors,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "seconds": self.seconds,
            "requests_per_s": self.requests_per_s,
            "latency_ms": latency_summary(self.latencies),
        }


def combine(results: Sequence[LoadResult]) -> LoadResult:
    """Several runs (e.g. interleaved rounds against two servers) as one result."""
    total = LoadResult(results[0].concurrency if results else 0)
    for r in results:
        total.seconds += r.seconds
        total.errors += r.errors
        total.statuses.update(r.statuses)
        total.latencies.extend(r.latencies)
    return total


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; returns (status, server keeps the connection open)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    keep_alive = b"\r\nconnection: close" not in lower
    at = lower.find(b"\r\ncontent-length:")
    if at >= 0:
        end = lower.index(b"\r\n", at + 2)
        await reader.readexactly(int(lower[at + 17 : end]))
    elif b"\r\ntransfer-encoding: chunked" in lower:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif status >= 200 and status not in (204, 304):
        await reader.read()  # delimited by close
        keep_alive = False
    return status, keep_alive


async def http_load(
    port: int,
    requests: Sequence[bytes],
    *,
    concurrency: int = 32,
    max_requests: int = 20_000,
    max_seconds: float = 30.0,
    host: str = LOOPBACK,
) -> LoadResult:
    """Send ``requests`` (cycled) over ``concurrency`` keep-alive connections, closed-loop.

    Stops after ``max_requests`` requests or ``max_seconds``, whichever comes first; a request
    in flight at the deadline is still waited for (and counted).
    """
    if host not in (LOOPBACK, "localhost", "::1"):
        raise ValueError("the load generator only targets loopback")
    if not requests:
        raise ValueError("no requests to send")
    result = LoadResult(concurrency)
    issued = 0
    started = time.perf_counter()
    deadline = started + max_seconds
    clock = time.perf_counter

    async def worker() -> None:
        nonlocal issued
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        try:
            while issued < max_requests and clock() < deadline:
                request = requests[issued % len(requests)]
                issued += 1
                try:
                    if writer is None:
                        reader, writer = await asyncio.open_connection(host, port)
                    assert reader is not None
                    t0 = clock()
                    writer.write(request)
                    status, keep_alive = await asyncio.wait_for(
                        _read_response(reader), max(1.0, deadline - t0 + 10)
                    )
                    result.latencies.append(clock() - t0)
                    result.statuses[status] += 1
                except (
                    TimeoutError,
                    OSError,
                    asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError,
                    ValueError,
                ):
                    result.errors += 1
                    keep_alive = False
                    await asyncio.sleep(0.01)
                if not keep_alive and writer is not None:
                    writer.close()
                    writer = None
        finally:
            if writer is not None:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = clock() - started
    return result
