from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gridgov_common.testing import RunningService, token_for
from gridgov_grid.fixtures import SmallCity, create_small_city

ADMIN = token_for(roles=["admin"], scopes=["440306"])


@pytest.fixture
async def grid(launch) -> AsyncIterator[RunningService]:
    async with launch("grid") as svc:
        yield svc


@pytest.fixture
async def city(grid: RunningService) -> SmallCity:
    async with grid.client(ADMIN) as http:
        return await create_small_city(http)
