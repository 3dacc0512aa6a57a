"""Container launcher: ``serve`` runs the service named by $SERVICE, ``healthcheck`` probes it.

Standard library only. Used by deploy/Dockerfile (CMD and HEALTHCHECK); migrations run the
``gridgov`` console script directly (``gridgov migrate <service>``).
"""

from __future__ import annotations

import os
import sys
import urllib.request

PORTS = {"grid": 8101, "inspection": 8102, "population": 8103, "notify": 8104}


def _service() -> str:
    service = os.environ.get("SERVICE", "")
    if service not in PORTS:
        sys.exit(f"SERVICE must be one of {', '.join(PORTS)}, not {service!r}")
    return service


def _port(service: str) -> int:
    return int(os.environ.get("PORT") or PORTS[service])


def serve() -> None:
    service = _service()
    argv = [
        "uvicorn",
        f"gridgov_{service}.main:app",
        "--host",
        os.environ.get("HOST", "0.0.0.0"),
        "--port",
        str(_port(service)),
        "--proxy-headers",
        "--forwarded-allow-ips",
        os.environ.get("FORWARDED_ALLOW_IPS", "*"),
        "--timeout-graceful-shutdown",
        os.environ.get("GRACEFUL_SHUTDOWN_SECONDS", "20"),
        "--no-server-header",
    ]
    os.execvp(argv[0], argv)  # noqa: S606 (replaces this process, fixed argv)


def healthcheck() -> None:
    url = f"http://127.0.0.1:{_port(_service())}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            ok = response.status == 200
    except OSError as exc:
        sys.exit(f"unhealthy: {exc}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "serve"
    if command == "serve":
        serve()
    elif command == "healthcheck":
        healthcheck()
    else:
        sys.exit(f"usage: {sys.argv[0]} serve|healthcheck")
