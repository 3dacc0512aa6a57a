"""Delivery of dispatches on push channels, as rows in the database.

A delivery row is claimed by one worker at a time (``claimed_by`` + ``claim_expires_at``), so
several replicas share the work and a crashed worker's claims are picked up after they expire;
rows survive restarts. A channel is a small class with ``send``: webhook today, SMS tomorrow.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from urllib.parse import urlsplit

import httpx
from prometheus_client import Counter, Histogram
from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gridgov_common.app import ServiceContext
from gridgov_common.db import UTCDateTime, utcnow
from gridgov_common.lease import REPLICA_ID

from .departments import active_secrets
from .dispatches import DIRECT_HOLDER, mark_delivered, move
from .models import Delivery, Department
from .settings import Settings
from .webhooks import Outcome, RetryPolicy, classify, webhook_headers

log = logging.getLogger("gridgov.notify.delivery")

ATTEMPTS = Counter(
    "gridgov_notify_delivery_attempts_total", "Delivery attempts", ["channel", "outcome"]
)
FAILED = Counter("gridgov_notify_deliveries_failed_total", "Deliveries given up", ["channel"])
LATENCY = Histogram("gridgov_notify_delivery_seconds", "Delivery attempt duration", ["channel"])


@dataclass
class AttemptResult:
    status: int | None  # None: timeout or connection error
    error: str | None = None
    retry_after: str | None = None


class Channel(Protocol):
    name: str

    async def send(self, delivery: Delivery, department: Department) -> AttemptResult: ...


class WebhookChannel:
    """Standard Webhooks: signed POST with every currently valid secret of the department.

    One pooled client per receiving origin: httpcore scans every connection of a pool on each
    request, so one pool shared by all departments costs more per request the more there are.
    """

    name = "webhook"

    def __init__(self, timeout: float, connections_per_origin: int) -> None:
        self.timeout = timeout
        self.limits = httpx.Limits(
            max_connections=connections_per_origin,
            max_keepalive_connections=connections_per_origin,
        )
        self.clients: dict[str, httpx.AsyncClient] = {}

    def client(self, url: str) -> httpx.AsyncClient:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        client = self.clients.get(origin)
        if client is None:
            client = self.clients[origin] = httpx.AsyncClient(
                timeout=self.timeout, limits=self.limits
            )
        return client

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()
        self.clients.clear()

    async def send(self, delivery: Delivery, department: Department) -> AttemptResult:
        secrets = active_secrets(department)
        if not secrets:
            return AttemptResult(status=0, error="department has no webhook secret")
        body = delivery.body.encode()
        headers = webhook_headers(secrets, delivery.id, int(time.time()), body)
        headers["content-type"] = "application/json"
        url = department.webhook_url or delivery.target
        try:
            r = await self.client(url).post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return AttemptResult(status=None, error=f"{type(exc).__name__}: {exc}")
        return AttemptResult(
            status=r.status_code,
            error=None if r.is_success else r.text[:500],
            retry_after=r.headers.get("retry-after"),
        )


_deliveries = Delivery.__table__
# One statement for every batch (so compiled once), run with one parameter set per delivery.
SUCCEEDED = (
    update(_deliveries)
    .where(
        _deliveries.c.id == bindparam("b_id"),
        _deliveries.c.claimed_by == bindparam("b_claim"),
    )
    .values(
        state="succeeded",
        completed_at=bindparam("b_now", type_=UTCDateTime()),
        attempts=_deliveries.c.attempts + 1,
        first_attempt_at=func.coalesce(
            _deliveries.c.first_attempt_at, bindparam("b_first", type_=UTCDateTime())
        ),
        last_status=bindparam("b_status"),
        last_error=None,
        claimed_by=None,
        claim_expires_at=None,
    )
)


class DeliveryWorker:
    def __init__(self, ctx: ServiceContext, holder: str | None = None) -> None:
        self.ctx = ctx
        settings = ctx.settings
        assert isinstance(settings, Settings)
        self.settings = settings
        self.holder = holder or f"{REPLICA_ID}-{id(self):x}"
        self.policy = RetryPolicy(
            base=timedelta(seconds=settings.webhook_retry_base_seconds),
            max_delay=timedelta(
                seconds=max(settings.webhook_retry_max_seconds, settings.webhook_retry_base_seconds)
            ),
            horizon=timedelta(hours=settings.webhook_horizon_hours),
        )
        self.webhooks = WebhookChannel(
            settings.webhook_timeout_seconds, settings.delivery_connections_per_origin
        )
        self.channels: dict[str, Channel] = {"webhook": self.webhooks}
        self.sem = asyncio.Semaphore(settings.delivery_concurrency)
        self.incoming: asyncio.Queue[tuple[Delivery, Department]] = asyncio.Queue()
        self.results: asyncio.Queue[tuple[Delivery, AttemptResult, datetime]] = asyncio.Queue()
        self._round = 0
        self.tasks: set[asyncio.Task[None]] = set()

    async def claim(self, limit: int = 100) -> list[Delivery]:
        """Claim due deliveries in one statement; the re-checked WHERE makes it race-safe."""
        now = utcnow()
        until = now + timedelta(seconds=self.settings.delivery_claim_seconds)
        self._round += 1
        token = f"{self.holder}:{self._round}"
        free = or_(Delivery.claim_expires_at.is_(None), Delivery.claim_expires_at < now)
        due = (
            select(Delivery.id)
            .where(Delivery.state == "pending", Delivery.next_attempt_at <= now, free)
            .order_by(Delivery.next_attempt_at)
            .limit(limit)
            .scalar_subquery()
        )
        async with self.ctx.db.reader() as session:
            # A plain read first: no write lock (SQLite) unless there is something to claim.
            anything = await session.scalar(
                select(Delivery.id)
                .where(Delivery.state == "pending", Delivery.next_attempt_at <= now, free)
                .limit(1)
            )
        if anything is None:
            return []
        async with self.ctx.db.transaction() as session:
            await session.execute(
                update(Delivery)
                .where(Delivery.id.in_(due), Delivery.state == "pending", free)
                .values(claimed_by=token, claim_expires_at=until)
                .execution_options(synchronize_session=False)
            )
            rows = await session.scalars(select(Delivery).where(Delivery.claimed_by == token))
            return list(rows.all())

    async def attempt(self, delivery: Delivery, departments: dict[str, Department]) -> None:
        dept = departments.get(delivery.department_id)
        channel = self.channels.get(delivery.channel)
        started = utcnow()
        async with self.sem:
            if channel is None or dept is None:
                result = AttemptResult(
                    status=0, error=f"no channel {delivery.channel!r} or department"
                )
            else:
                with LATENCY.labels(delivery.channel).time():
                    result = await channel.send(delivery, dept)
        await self.results.put((delivery, result, started))

    def outcome_values(
        self, delivery: Delivery, result: AttemptResult, started: datetime, now: datetime
    ) -> tuple[Outcome, dict[str, object]]:
        outcome = classify(result.status) if result.status != 0 else Outcome.FAIL
        ATTEMPTS.labels(delivery.channel, outcome.value).inc()
        attempts = delivery.attempts + 1
        first = delivery.first_attempt_at or started
        values: dict[str, object] = dict(
            attempts=attempts,
            first_attempt_at=first,
            last_status=result.status,
            last_error=result.error,
            claimed_by=None,
            claim_expires_at=None,
        )
        if outcome is Outcome.RETRY and self.policy.gave_up(first, now):
            outcome = Outcome.FAIL
            values["last_error"] = (
                f"gave up after {attempts} attempts: {result.error or result.status}"
            )
        if outcome is Outcome.SUCCESS:
            values.update(state="succeeded", completed_at=now)
        elif outcome is Outcome.FAIL:
            values.update(state="failed", completed_at=now)
        else:
            values.update(
                next_attempt_at=now + self.policy.next_delay(attempts, result.retry_after, now)
            )
        return outcome, values

    async def record(self, batch: list[tuple[Delivery, AttemptResult, datetime]]) -> None:
        """Write a batch of attempt results (and the dispatch transitions) in one transaction:
        the successes, by far the most, with one statement per table."""
        now = utcnow()
        async with self.ctx.db.transaction() as session:
            succeeded: list[tuple[Delivery, dict[str, object]]] = []
            for delivery, result, started in batch:
                outcome, values = self.outcome_values(delivery, result, started, now)
                if outcome is Outcome.SUCCESS:
                    succeeded.append((delivery, values))
                    continue
                res = await session.execute(
                    update(Delivery)
                    .where(Delivery.id == delivery.id, Delivery.claimed_by == delivery.claimed_by)
                    .values(**values)
                    .execution_options(synchronize_session=False)
                )
                if res.rowcount != 1:  # type: ignore[attr-defined]
                    continue  # our claim expired and someone else took over
                if outcome is Outcome.FAIL:
                    FAILED.labels(delivery.channel).inc()
                    log.error(
                        "delivery %s of dispatch %s failed: %s",
                        delivery.id,
                        delivery.dispatch_id,
                        values["last_error"] or result.status,
                    )
                    await move(
                        session,
                        delivery.dispatch_id,
                        ("pending",),
                        "failed",
                        now=now,
                        actor=delivery.channel,
                        note=f"delivery failed: {values['last_error'] or result.status}",
                        failed_at=now,
                    )
            if succeeded:
                await self.record_successes(session, succeeded, now)

    async def record_successes(
        self, session: AsyncSession, done: list[tuple[Delivery, dict[str, object]]], now: datetime
    ) -> None:
        """All successful deliveries in one executemany UPDATE (each still guarded by its own
        claim), then pending → delivered for the dispatches of those that really succeeded."""
        await session.execute(
            SUCCEEDED,
            [
                {
                    "b_id": d.id,
                    "b_claim": d.claimed_by,
                    "b_first": v["first_attempt_at"],
                    "b_status": v["last_status"],
                    "b_now": now,
                }
                for d, v in done
            ],
        )
        # A delivery whose claim had expired was not updated: whoever took it over records it.
        by_channel: dict[str, list[str]] = {}
        for delivery, _ in done:
            by_channel.setdefault(delivery.channel, []).append(delivery.id)
        for channel, delivery_ids in by_channel.items():
            await mark_delivered(session, delivery_ids, now=now, actor=channel)

    def handoff(self, deliveries: list[tuple[Delivery, Department]]) -> None:
        """Deliveries this replica just created (already claimed for it): send them now."""
        for item in deliveries:
            self.incoming.put_nowait(item)

    async def feeder(self) -> None:
        while True:
            items = [await self.incoming.get()]
            while not self.incoming.empty() and len(items) < 500:
                items.append(self.incoming.get_nowait())
            try:
                # Only what really committed and is still ours (one read, no write lock).
                async with self.ctx.db.reader() as session:
                    ours = set(
                        (
                            await session.scalars(
                                select(Delivery.id).where(
                                    Delivery.id.in_([d.id for d, _ in items]),
                                    Delivery.state == "pending",
                                    Delivery.claimed_by == DIRECT_HOLDER,
                                )
                            )
                        ).all()
                    )
                for delivery, department in items:
                    if delivery.id in ours:
                        self.spawn(delivery, {department.id: department})
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "handing %d new deliveries over failed; claims will expire", len(items)
                )

    def spawn(self, delivery: Delivery, departments: dict[str, Department]) -> None:
        task = asyncio.create_task(self._safe_attempt(delivery, departments))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def recorder(self) -> None:
        linger = self.settings.delivery_record_linger_seconds
        while True:
            batch = [await self.results.get()]
            if linger > 0:
                # Results arrive one by one; a short wait writes many in one transaction
                # (a few statements each) instead of one transaction per delivery.
                await asyncio.sleep(linger)
            while not self.results.empty() and len(batch) < 500:
                batch.append(self.results.get_nowait())
            try:
                await self.record(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Claims expire, so these deliveries are attempted again later.
                log.exception("recording %d delivery results failed", len(batch))

    async def run(self) -> None:
        helpers = [asyncio.create_task(self.recorder()), asyncio.create_task(self.feeder())]
        try:
            while True:
                try:
                    claimed = await self.claim()
                    if claimed:
                        async with self.ctx.db.reader() as session:
                            ids = {d.department_id for d in claimed}
                            rows = await session.scalars(
                                select(Department).where(Department.id.in_(ids))
                            )
                            departments = {d.id: d for d in rows.all()}
                    for delivery in claimed:
                        self.spawn(delivery, departments)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("claiming deliveries failed: %s", exc)
                    claimed = []
                if len(claimed) < 100:
                    # New deliveries are handed over on commit; this loop only picks up
                    # retries that fall due and claims that expired (a crashed replica's).
                    await asyncio.sleep(self.settings.delivery_poll_seconds)
        finally:
            pending = [*helpers, *self.tasks]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            await self.release_claims()
            await self.webhooks.aclose()

    async def release_claims(self) -> None:
        """On a clean stop, hand back what this worker claimed but did not finish, so another
        replica (or this one, restarted) sends it now instead of after the claim expires."""
        mine = or_(
            Delivery.claimed_by.startswith(f"{self.holder}:"), Delivery.claimed_by == DIRECT_HOLDER
        )
        try:
            async with self.ctx.db.transaction() as session:
                await session.execute(
                    update(Delivery)
                    .where(Delivery.state == "pending", mine)
                    .values(claimed_by=None, claim_expires_at=None)
                    .execution_options(synchronize_session=False)
                )
        except Exception:
            log.exception("releasing delivery claims failed; they will expire")

    async def _safe_attempt(self, delivery: Delivery, departments: dict[str, Department]) -> None:
        try:
            await self.attempt(delivery, departments)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("delivery attempt %s crashed; its claim will expire", delivery.id)


async def delivery_worker(ctx: ServiceContext) -> None:
    worker = DeliveryWorker(ctx)
    ctx.state["delivery_worker"] = worker
    await worker.run()
