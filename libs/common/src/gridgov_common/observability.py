"""JSON logs with the request or event id, Prometheus metrics, and security headers."""

from __future__ import annotations

import contextvars
import itertools
import logging
import os
import sys
import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from pythonjsonlogger.json import JsonFormatter
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Generated request ids: 32 hex digits, a random per-process half and a counter. Unique like
# a uuid4, without a system call for randomness on every request.
_id_prefix = os.urandom(8).hex()
_id_counter = itertools.count()


def _new_id_prefix() -> None:  # a forked worker must not repeat its parent's ids
    global _id_prefix, _id_counter
    _id_prefix, _id_counter = os.urandom(8).hex(), itertools.count()


os.register_at_fork(after_in_child=_new_id_prefix)

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

REQUESTS = Counter(
    "gridgov_http_requests_total", "HTTP requests", ["service", "method", "route", "status"]
)
LATENCY = Histogram(
    "gridgov_http_request_seconds",
    "HTTP request latency",
    ["service", "method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class _ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


def configure_logging(service: str, level: str = "INFO", json_logs: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json_logs:
        handler.setFormatter(
            JsonFormatter(
                "{asctime}{levelname}{name}{message}{service}{request_id}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(_ContextFilter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiokafka logs every reconnect attempt at ERROR while the broker is down; the relay and
    # consumers already report outages once per retry at WARNING.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


# On every answer, unless the route set the header itself. HSTS is left to the TLS-terminating
# ingress (ingress-nginx sends it), since the services speak plain HTTP behind it.
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    # Answers carry personal data and region-scoped results: no shared or browser cache.
    (b"cache-control", b"no-store"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
# A JSON (or image) answer runs nothing and embeds nothing. HTML pages (the /docs page loads
# Swagger UI's script and styles) keep only the framing rule.
API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
HTML_CSP = (b"content-security-policy", b"frame-ancestors 'none'")


class RequestContextMiddleware:
    """Request id (X-Request-ID in and out), access metrics and security headers."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service
        # Labelled children per (method, route template, status): looking them up through
        # ``labels()`` takes a lock and builds the label tuple on every request.
        self._metrics: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = ""
        for name, value in scope["headers"]:  # ASGI header names are lower-case
            if name == b"x-request-id":
                incoming = value.decode(errors="ignore")
        request_id = incoming[:100] if incoming.isprintable() and incoming else _new_request_id()
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                present = {k.lower(): v for k, v in headers}
                headers.append((b"x-request-id", request_id.encode()))
                headers.extend(h for h in SECURITY_HEADERS if h[0] not in present)
                if b"content-security-policy" not in present:
                    html = present.get(b"content-type", b"").startswith(b"text/html")
                    headers.append(HTML_CSP if html else API_CSP)
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            key = (scope["method"], getattr(scope.get("route"), "path", "unmatched"), status)
            metrics = self._metrics.get(key)
            if metrics is None:
                method, template, _ = key
                metrics = self._metrics[key] = (
                    REQUESTS.labels(self.service, method, template, str(status)),
                    LATENCY.labels(self.service, method, template),
                )
            metrics[0].inc()
            metrics[1].observe(time.perf_counter() - started)
            request_id_var.reset(token)


def _new_request_id() -> str:
    return f"{_id_prefix}{next(_id_counter) & 0xFFFF_FFFF_FFFF_FFFF:016x}"


async def metrics_endpoint(_: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
