"""The whole platform in one test: four services on real HTTP servers, one real broker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gridgov_common.testing import RunningService, WebhookReceiver, token_for
from gridgov_grid.fixtures import SmallCity, create_small_city
from gridgov_notify.webhooks import generate_secret

ADMIN = token_for(roles=["admin"], scopes=["440306"])
INSPECTOR = token_for(roles=["inspector"], scopes=["440306"], subject="inspector-li")

# Who covers what in the small city: street 440306001 has one police station and one
# community committee per community; the fire brigade covers the district; the other street
# has its own police station and committee (they must hear nothing of the first street).
# The first street's office is the committee's parent: escalations go there. Created in
# this order (parents first).
DEPARTMENTS: dict[str, tuple[str, list[str], str | None]] = {
    "office-xinan": ("other", ["440306001"], None),
    "police-xinan": ("police_station", ["440306001"], None),
    "fire-baoan": ("fire_brigade", ["440306"], None),
    "committee-haiyu": ("community_committee", ["440306001001"], "office-xinan"),
    "police-xixiang": ("police_station", ["440306002"], None),
    "committee-gushu": ("community_committee", ["440306002001"], None),
}


def department_token(dept_id: str) -> str:
    return token_for(
        roles=["department"], scopes=["440306"], subject=f"user-{dept_id}", department_id=dept_id
    )


@dataclass
class Platform:
    grid: RunningService
    inspection: RunningService
    population: RunningService
    notify: RunningService
    city: SmallCity
    receivers: dict[str, WebhookReceiver] = field(default_factory=dict)


@pytest.fixture
async def platform(launch, tmp_path: Path) -> AsyncIterator[Platform]:
    async with AsyncExitStack() as stack:
        receivers = {name: WebhookReceiver(secret=generate_secret()) for name in DEPARTMENTS}
        for receiver in receivers.values():
            await stack.enter_async_context(receiver.serve())
        notify = await stack.enter_async_context(
            launch(
                "notify",
                webhook_retry_base_seconds=0.05,
                webhook_retry_max_seconds=0.2,
                delivery_poll_seconds=0.05,
                escalation_poll_seconds=0.2,
            )
        )
        grid = await stack.enter_async_context(launch("grid"))
        inspection = await stack.enter_async_context(
            launch(
                "inspection",
                grid_svc_url=grid.url,
                photo_dir=str(tmp_path / "photos"),
                sweep_enabled=False,
            )
        )
        population = await stack.enter_async_context(launch("population", grid_svc_url=grid.url))
        async with notify.client(ADMIN) as http:
            for name, (kind, prefixes, parent) in DEPARTMENTS.items():
                r = await http.post(
                    "/v1/departments",
                    json={
                        "id": name,
                        "name": name,
                        "type": kind,
                        "jurisdictions": prefixes,
                        "parent_id": parent,
                        "webhook": {"url": receivers[name].url, "secret": receivers[name].secret},
                    },
                )
                assert r.status_code == 201, r.text
        async with grid.client(ADMIN) as http:
            city = await create_small_city(http)
        yield Platform(grid, inspection, population, notify, city, receivers)
