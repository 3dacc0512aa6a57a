"""Leases: at most one replica runs a singleton job (outbox relay, schedulers) at a time.

A row per job holds the current holder and an expiry; a holder renews it each round, and
another replica takes over once it has expired. Works the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta

from sqlalchemy import insert, or_, update
from sqlalchemy.exc import IntegrityError

from .db import Database, PlatformTables, utcnow

REPLICA_ID = f"{socket.gethostname()}-{os.getpid()}"


class Lease:
    def __init__(
        self,
        db: Database,
        tables: PlatformTables,
        name: str,
        ttl: timedelta = timedelta(seconds=15),
        holder: str | None = None,
    ) -> None:
        self.db = db
        self.table = tables.leases
        self.name = name
        self.ttl = ttl
        # Unique per instance, so two workers in one process are two holders too.
        self.holder = holder or f"{REPLICA_ID}-{uuid.uuid4().hex[:8]}"
        self._held_until: datetime | None = None  # expiry this holder last wrote

    async def ensure(self) -> bool:
        """Like :meth:`acquire`, but without a database write while at least two thirds of the
        ttl this holder last wrote remain: for loops that check the lease many times a second."""
        if self._held_until is not None and utcnow() < self._held_until - self.ttl / 3:
            return True
        return await self.acquire()

    async def acquire(self) -> bool:
        """Take or renew the lease; True while this replica holds it."""
        now = utcnow()
        t = self.table
        self._held_until = None
        async with self.db.transaction() as session:
            result = await session.execute(
                update(t)
                .where(t.c.name == self.name)
                .where(or_(t.c.holder == self.holder, t.c.expires_at < now))
                .values(holder=self.holder, expires_at=now + self.ttl)
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                self._held_until = now + self.ttl
                return True
        try:
            async with self.db.transaction() as session:
                await session.execute(
                    insert(t).values(name=self.name, holder=self.holder, expires_at=now + self.ttl)
                )
        except IntegrityError:
            return False
        self._held_until = now + self.ttl
        return True

    async def release(self) -> None:
        self._held_until = None
        t = self.table
        async with self.db.transaction() as session:
            await session.execute(
                update(t)
                .where(t.c.name == self.name, t.c.holder == self.holder)
                .values(expires_at=utcnow())
            )
