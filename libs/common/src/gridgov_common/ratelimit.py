"""A budget of writes per caller: past it, ``429`` problem+json with ``Retry-After``.

Every POST, PUT, PATCH and DELETE counts against its caller: the token's subject, or the
client address for a request without a valid token (so forged or missing tokens are limited
too). Reads pass straight through: one method check, nothing else. Callers holding an exempt
role (``service`` by default: services calling each other, bulk loaders) are not counted.

Counting uses the ``limits`` library's sliding window counter: at most about
``rate_limit_writes`` writes in any ``rate_limit_window_seconds`` (the previous window's
count weighted by how much of it still overlaps). A caller may spend the whole budget at
once (an offline phone uploading its queue), then gets it back smoothly. Its moving-window
strategy would count exactly, but its in-memory store expires entries through a thread hop
per caller: with 1,000 recent callers that took ~90 % of a core at 50 writes/s (measured),
against a few % for the counter.

The default store is this process's memory, so each replica counts for itself (N replicas
behind a Service allow up to N times the budget). A shared store is one setting away:
``GRIDGOV_RATE_LIMIT_STORAGE_URL=async+redis://host:6379/0`` (with ``limits[async-redis]``
installed); the counters are then kept per service across its replicas.
"""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItemPerSecond
from limits.aio.storage import Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string
from prometheus_client import Counter
from starlette.types import ASGIApp, Receive, Scope, Send

from .auth import scope_principal
from .errors import Problem, problem_response
from .settings import ServiceSettings

log = logging.getLogger("gridgov.ratelimit")

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

LIMITED = Counter(
    "gridgov_rate_limited_total", "Writes refused with 429 (caller over budget)", ["service"]
)


def storage_for(url: str) -> Storage:
    """The async variant of a ``limits`` storage URI (``memory://`` means ``async+memory://``)."""
    storage = storage_from_string(url if url.startswith("async+") else f"async+{url}")
    if not isinstance(storage, Storage):
        raise ValueError(f"rate_limit_storage_url {url!r} is not an async storage")
    return storage


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, settings: ServiceSettings) -> None:
        self.app = app
        self.service = settings.service_name
        self.writes = settings.rate_limit_writes
        self.window = settings.rate_limit_window_seconds
        self.item = RateLimitItemPerSecond(self.writes, self.window)
        self.limiter = SlidingWindowCounterRateLimiter(storage_for(settings.rate_limit_storage_url))
        self.exempt = tuple(settings.rate_limit_exempt_roles)
        self.limited = LIMITED.labels(self.service)
        self._store_failed_at = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITE_METHODS:
            await self.app(scope, receive, send)
            return
        caller = await self._caller(scope)
        if caller is None or await self._allowed(caller):
            await self.app(scope, receive, send)
            return
        self.limited.inc()
        retry_after = await self._retry_after(caller)
        problem = Problem(
            429,
            "rate-limited",
            f"too many writes: each caller may make {self.writes} writes per "
            f"{self.window} s; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
            limit=self.writes,
            window_seconds=self.window,
            retry_after=retry_after,
        )
        await problem_response(problem, scope["path"])(scope, receive, send)

    async def _caller(self, scope: Scope) -> str | None:
        """Whom the write counts against; None for an exempt caller."""
        principal = await scope_principal(scope)
        if principal is not None:
            return None if principal.has_role(*self.exempt) else f"sub:{principal.subject}"
        client = scope.get("client")
        return f"addr:{client[0] if client else 'unknown'}"

    async def _allowed(self, caller: str) -> bool:
        try:
            return await self.limiter.hit(self.item, self.service, caller)
        except Exception as exc:
            # An unreachable shared store must not take the API down: let writes through.
            if time.monotonic() - self._store_failed_at > 60:
                self._store_failed_at = time.monotonic()
                log.warning("rate limit store unavailable, not limiting: %s", exc)
            return True

    async def _retry_after(self, caller: str) -> int:
        """Whole seconds until one more write fits (at least 1, at most the window)."""
        try:
            stats = await self.limiter.get_window_stats(self.item, self.service, caller)
            wait = stats.reset_time - time.time()
        except Exception:
            wait = self.window
        return min(self.window, max(1, math.ceil(wait)))
