"""Helpers for notify-svc tests: publish real events on the test broker, run receivers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gridgov_common.bus import Bus
from gridgov_common.events import TOPICS, EventPayload, make_event
from gridgov_common.events.grid import RegionCreated, RegionRef
from gridgov_common.events.inspection import HazardReported, VenueRef
from gridgov_common.testing import WebhookReceiver
from gridgov_notify.webhooks import generate_secret

GRID = "440306001001001"
OTHER_GRID = "440306002001001"


class Publisher:
    """Plays the other services: publishes real CloudEvents on the test's broker."""

    def __init__(self, bootstrap: str) -> None:
        self.bus = Bus(bootstrap, "test-publisher")
        self.ready = False

    async def publish(
        self, payload: EventPayload, *, gridcode: str | None, subject: str | None = None, evt=None
    ):
        if not self.ready:
            await self.bus.ensure_topics(TOPICS, 1, 1)
            self.ready = True
        evt = evt or make_event(payload, source="test", subject=subject, gridcode=gridcode)
        await self.bus.publish(
            payload.topic, evt.key, evt.model_dump_json(exclude_none=True).encode()
        )
        return evt

    async def region(
        self, code: str, grid_class: str = "key", version: int = 1, status: str = "active"
    ):
        return await self.publish(
            RegionCreated(
                code=code,
                level="grid",
                name=f"grid {code}",
                parent_code=code[:12],
                ancestors=[RegionRef(code=code[:6], name="d", level="district")],
                status=status,
                grid_class=grid_class,
                version=version,
            ),
            gridcode=code,
        )

    async def hazard(self, grid: str = GRID, severity: str = "major", hazard_id: str = "hz-1"):
        return await self.publish(
            hazard_payload(grid, severity, hazard_id), gridcode=grid, subject=hazard_id
        )

    async def close(self) -> None:
        await self.bus.close()


def hazard_payload(grid: str, severity: str = "major", hazard_id: str = "hz-1") -> HazardReported:
    return HazardReported(
        hazard_id=hazard_id,
        checkpoint_id="cp-1",
        inspection_id="in-1",
        venue=VenueRef(
            venue_id="v1",
            name="小餐馆",
            venue_type="restaurant",
            address="新安路1号",
            location=(113.905, 22.56),
        ),
        grid_code=grid,
        severity=severity,
        item_code="FE-01",
        item_title="灭火器过期",
        description="extinguisher expired",
        deadline=datetime.now(UTC) + timedelta(days=3),
        reported_by="inspector-1",
    )


@pytest.fixture
async def publisher(kafka_broker):
    p = Publisher(kafka_broker.bootstrap)
    yield p
    await p.close()


# A department's system: a real HTTP server verifying Standard Webhooks signatures.
Receiver = WebhookReceiver


def new_secret() -> str:
    return generate_secret()


async def make_department(
    http, dept_id: str, dtype: str, prefixes: list[str], *, receiver=None, parent=None
):
    body: dict[str, Any] = {
        "id": dept_id,
        "name": dept_id,
        "type": dtype,
        "jurisdictions": prefixes,
        "parent_id": parent,
    }
    if receiver is not None:
        body["webhook"] = {"url": receiver.url, "secret": receiver.secret}
    r = await http.post("/v1/departments", json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def settle(seconds: float = 0.5) -> None:
    await asyncio.sleep(seconds)
