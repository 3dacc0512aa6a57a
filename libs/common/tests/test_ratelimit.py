"""The write budget per caller, through a real server built by the app factory."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

import httpx

from gridgov_common.app import create_app
from gridgov_common.settings import ServiceSettings
from gridgov_common.testing import RunningService, serve, token_for

from .conftest import definition

ALICE = token_for(roles=["admin"], scopes=["440306"], subject="alice")
BOB = token_for(roles=["admin"], scopes=["440306"], subject="bob")
LOADER = token_for(roles=["admin", "service"], scopes=["440306"], subject="bulk-loader")
RATE_LIMITED = "urn:gridgov:problem:rate-limited"
_ids = itertools.count()


@contextlib.asynccontextmanager
async def limited(settings: ServiceSettings, **limits: Any) -> AsyncIterator[RunningService]:
    defn = definition(settings.model_copy(update=limits))
    defn.handlers = {}  # no consumer: its group leaving on stop costs seconds, and isn't tested
    async with serve(create_app(defn)) as running:
        yield running


async def write(http: httpx.AsyncClient, **kw: Any) -> httpx.Response:
    return await http.post("/v1/notes", json={"id": f"n{next(_ids)}", "text": "hi"}, **kw)


def retry_after(r: httpx.Response) -> int:
    assert r.status_code == 429, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["cache-control"] == "no-store"  # a refusal is not cached either
    body = r.json()
    assert body["type"] == RATE_LIMITED
    assert r.headers["retry-after"].isdigit()  # whole seconds
    assert body["retry_after"] == int(r.headers["retry-after"])
    return int(r.headers["retry-after"])


async def test_writes_beyond_the_budget_are_refused_for_that_caller_only(settings):
    # A day-long window: the count is exact whatever the test's speed.
    async with limited(settings, rate_limit_writes=3, rate_limit_window_seconds=86400) as svc:
        async with svc.client(ALICE) as alice:
            for _ in range(3):
                assert (await write(alice)).status_code == 201
            refused = await write(alice)
            wait = retry_after(refused)
            assert 1 <= wait <= 86400
            assert "3 writes per 86400 s" in refused.json()["detail"]
            assert (await write(alice)).status_code == 429  # still over

            # Reads are never counted or refused.
            for _ in range(10):
                assert (await alice.get("/v1/notes/n-missing")).status_code == 404
            assert (await alice.get("/healthz")).status_code == 200
            paths = (await alice.get("/openapi.json")).json()["paths"]
            assert "429" in paths["/v1/notes"]["post"]["responses"]  # documented for clients
            assert "429" not in paths["/v1/notes/{note_id}"]["get"]["responses"]

        async with svc.client(BOB) as bob:
            assert (await write(bob)).status_code == 201

        async with svc.client(LOADER) as loader:  # exempt role: a bulk caller
            for _ in range(5):
                assert (await write(loader)).status_code == 201

        # Without a valid token the client address is the caller: 401s count too.
        async with svc.client("forged.token.value") as anonymous:
            answers = [(await write(anonymous)).status_code for _ in range(4)]
        assert answers == [401, 401, 401, 429]


async def test_budget_returns_when_retry_after_has_passed(settings):
    async with limited(settings, rate_limit_writes=2, rate_limit_window_seconds=1) as svc:
        async with svc.client(ALICE) as http:
            for _ in range(20):  # a 1 s window: go until the budget is spent
                body = {"id": f"n{next(_ids)}", "text": "hi"}
                headers = {"Idempotency-Key": f"upload-{next(_ids)}"}
                r = await http.post("/v1/notes", json=body, headers=headers)
                if r.status_code == 429:
                    break
                assert r.status_code == 201
            wait = retry_after(r)
            assert wait == 1  # never more than the window
            await asyncio.sleep(wait)
            # The same upload, retried as told: accepted, not replayed as the 429.
            again = await http.post("/v1/notes", json=body, headers=headers)
            assert again.status_code == 201, again.text
            assert "idempotent-replayed" not in again.headers
