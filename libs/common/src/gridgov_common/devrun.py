"""The embedded run: a local broker and the four services as separate processes.

Ports are fixed so URLs are stable: broker 9092, dashboard 8100, grid 8101, inspection 8102,
population 8103, notify 8104 (``GRIDGOV_BROKER_PORT`` and ``GRIDGOV_PORT_OFFSET`` move them). A
pid file under ``var/`` stops a second run from starting over the first.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from .embedded import Broker, wait_for_port
from .settings import VAR_DIR

BROKER_PORT = int(os.environ.get("GRIDGOV_BROKER_PORT", "9092"))
# Shifts the four service ports, so a second copy (another checkout) can run beside the first.
PORT_OFFSET = int(os.environ.get("GRIDGOV_PORT_OFFSET", "0"))
SERVICES: list[tuple[str, str, int]] = [
    ("grid-svc", "gridgov_grid.main:app", 8101 + PORT_OFFSET),
    ("inspection-svc", "gridgov_inspection.main:app", 8102 + PORT_OFFSET),
    ("population-svc", "gridgov_population.main:app", 8103 + PORT_OFFSET),
    ("notify-svc", "gridgov_notify.main:app", 8104 + PORT_OFFSET),
]
# The command dashboard (gridgov_common.dashboard): started after the services it calls.
DASHBOARD_PORT = 8100 + PORT_OFFSET
PID_FILE = VAR_DIR / "gridgov-run.pid"


def _already_running() -> int | None:
    try:
        pid = int(PID_FILE.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except OSError:
        return None
    return pid


def _port_busy(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def run(demo: bool = True) -> int:
    demo = demo and os.environ.get("GRIDGOV_LOAD_DEMO", "true").lower() not in ("0", "false", "no")
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    pid = _already_running()
    if pid is not None:
        print(
            f"gridgov is already running (pid {pid}); stop it with Ctrl-C in its terminal "
            f"or `kill {pid}`.",
            file=sys.stderr,
        )
        return 1
    busy = [p for p in [BROKER_PORT, DASHBOARD_PORT] + [s[2] for s in SERVICES] if _port_busy(p)]
    if busy:
        print(
            f"cannot start: port(s) {', '.join(map(str, busy))} already in use on 127.0.0.1",
            file=sys.stderr,
        )
        return 1
    PID_FILE.write_text(str(os.getpid()))
    logs = VAR_DIR / "logs"
    logs.mkdir(exist_ok=True)
    broker = Broker(BROKER_PORT, log_path=logs / "broker.log")
    children: list[tuple[str, subprocess.Popen[bytes]]] = []

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        broker.start()
        env = dict(os.environ)
        env.setdefault("GRIDGOV_KAFKA_BOOTSTRAP_SERVERS", broker.bootstrap)
        for name, _, port in SERVICES:
            key = f"GRIDGOV_{name.removesuffix('-svc').upper()}_SVC_URL"
            env.setdefault(key, f"http://127.0.0.1:{port}")
        for name, target, port in SERVICES:
            children.append((name, _start_uvicorn(name, [target], port, env, logs)))
        for (name, proc), (_, _, port) in zip(children, SERVICES, strict=True):
            _wait_ready(name, proc, port, lambda: stopping)
        # Live streams end when the server stops; the timeout bounds any other open request.
        args = ["--factory", "gridgov_common.dashboard:app", "--timeout-graceful-shutdown", "3"]
        dashboard = _start_uvicorn("dashboard", args, DASHBOARD_PORT, env, logs)
        children.append(("dashboard", dashboard))
        _wait_ready("dashboard", dashboard, DASHBOARD_PORT, lambda: stopping, path="/healthz")
        _print_banner(broker.bootstrap, logs)
        if demo:
            # The system is usable while the city loads; the loader prints when it is done.
            threading.Thread(target=_load_demo_once, name="demo-loader", daemon=True).start()
        while not stopping:
            for name, proc in children:
                if proc.poll() is not None:
                    print(
                        f"{name} exited with code {proc.returncode}; see {logs / name}.log",
                        file=sys.stderr,
                    )
                    stopping = True
            time.sleep(0.5)
        return 0
    except (TimeoutError, RuntimeError) as exc:
        print(f"start-up failed: {exc}", file=sys.stderr)
        return 1
    finally:
        print("\nstopping gridgov…")
        for _, proc in reversed(children):
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for _, proc in children:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        broker.stop()
        PID_FILE.unlink(missing_ok=True)
        print("stopped.")


def _start_uvicorn(
    name: str, target: list[str], port: int, env: dict[str, str], logs: Path
) -> subprocess.Popen[bytes]:
    log = open(logs / f"{name}.log", "ab")
    address = ["--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", *target, *address, "--no-access-log"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_ready(
    name: str,
    proc: subprocess.Popen[bytes],
    port: int,
    stopping: object,
    timeout: float = 90.0,
    path: str = "/readyz",
) -> None:
    wait_for_port(port, timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited during start-up (code {proc.returncode})")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code == 200:
                print(f"  {name:<15} ready")
                return
        time.sleep(0.3)
    raise TimeoutError(f"{name} not ready after {timeout:.0f}s")


DEMO_MARKER = VAR_DIR / "demo-loaded.json"


def _load_demo_once() -> None:
    """Load the demo city on the first start (the marker records that it was loaded)."""
    if DEMO_MARKER.exists():
        return
    import json

    from .demo import DemoAlreadyLoaded, load

    print("  loading the demo city (first start only; GRIDGOV_LOAD_DEMO=false skips it)…")
    urls = {name.removesuffix("-svc"): f"http://127.0.0.1:{port}" for name, _, port in SERVICES}
    try:
        counts = load(urls)
    except DemoAlreadyLoaded as exc:
        DEMO_MARKER.write_text(json.dumps({"already_loaded": str(exc)}))
        print(f"  demo not loaded again: {exc}")
        return
    except Exception as exc:  # the services keep running; say why the city is incomplete
        print(f"  demo load failed: {exc!r} (see the service logs)", file=sys.stderr)
        return
    DEMO_MARKER.write_text(json.dumps(counts))
    print("  demo loaded:")
    for kind, n in counts.items():
        print(f"    {kind:<36} {n}")


def _print_banner(bootstrap: str, logs: Path) -> None:
    print("\ngridgov is running (embedded default: Tansu broker + SQLite under var/)\n")
    print(f"  broker           {bootstrap}")
    print(f"  dashboard        http://127.0.0.1:{DASHBOARD_PORT}   (sign in as a demo identity)")
    for name, _, port in SERVICES:
        print(f"  {name:<16} http://127.0.0.1:{port}   API docs: http://127.0.0.1:{port}/docs")
    print(f"\n  logs             {logs}/")
    print("  token            .venv/bin/gridgov token --role admin --scope 440306")
    print("\nPress Ctrl-C to stop.")
