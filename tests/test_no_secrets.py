"""Webhook secrets and NFC tag keys go in, and never come out: not in any answer of
notify-svc or inspection-svc (every GET in their OpenAPI, and the answers to the writes that
set them), nor in a log record or an event."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from gridgov_common.demo.photos import unique_jpeg
from gridgov_common.demo.venues import sun_message
from gridgov_common.testing import RunningService, eventually
from gridgov_notify.webhooks import decode_secret, generate_secret

from .conftest import ADMIN, INSPECTOR, Platform
from .leaks import every_message, found, key_forms, log_text

STREAM_SECONDS = 1.0


def secret_forms(label: str, secret: str) -> dict[bytes, str]:
    encoded = secret.removeprefix("whsec_")
    forms = {secret.encode(), encoded.encode(), encoded.rstrip("=").encode()}
    forms |= key_forms(decode_secret(secret))
    return dict.fromkeys(forms, label)


def tag_key_forms(label: str, hex_key: str) -> dict[bytes, str]:
    return dict.fromkeys(key_forms(bytes.fromhex(hex_key)), label)


async def secured_site(p: Platform, keys: list[str]) -> dict[str, Any]:
    """A venue with one checkpoint per tag key (given in upper and lower case hex)."""
    lon, lat = p.city.point_in(p.city.grid_west)
    answers = []
    async with p.inspection.client(ADMIN) as http:
        venue = await http.post(
            "/v1/venues",
            json={
                "name": "海裕小学",
                "venue_type": "restaurant",
                "address": "海裕路2号",
                "location": [lon, lat],
            },
        )
        assert venue.status_code == 201, venue.text
        checkpoints = []
        for i, key in enumerate(keys):
            uid = os.urandom(7).hex().upper()
            r = await http.post(
                f"/v1/venues/{venue.json()['id']}/checkpoints",
                json={"name": f"配电房{i}", "tag_uid": uid, "tag_key": key, "cycle_days": 30},
            )
            assert r.status_code == 201, r.text
            assert r.json()["secure_tag"] is True
            checkpoints.append(r.json())
            answers.append(r)
        patched = await http.patch(
            f"/v1/checkpoints/{checkpoints[0]['id']}", json={"assigned_inspector": "inspector-li"}
        )
        assert patched.status_code == 200, patched.text
        items = (await http.get("/v1/templates/restaurant")).json()["items"]
    return {
        "venue": venue.json(),
        "checkpoints": checkpoints,
        "point": [lon, lat],
        "items": [i["code"] for i in items],
        "answers": [venue, *answers, patched],
    }


async def inspect_with_tag(p: Platform, site: dict[str, Any], key: str) -> httpx.Response:
    """An inspection proven by the tag's SUN message, failing one item (a hazard opens)."""
    cp = site["checkpoints"][0]
    body = {
        "checkpoint_id": cp["id"],
        "tag_uid": cp["tag_uid"],
        "scanned_at": datetime.now(UTC).isoformat(),
        "position": site["point"],
        "accuracy_m": 8,
        "sun": sun_message(key, cp["tag_uid"], 1),
        "answers": [
            {"item_code": c, "result": "fail" if i == 0 else "pass", "note": "配电箱未上锁"}
            for i, c in enumerate(site["items"])
        ],
    }
    photo = unique_jpeg(3000)
    async with p.inspection.client(INSPECTOR) as http:
        r = await http.post(
            "/v1/inspections",
            data={"inspection": json.dumps(body)},
            files=[("photos", ("scene.jpg", photo, "image/jpeg"))],
        )
    assert r.status_code == 201, r.text
    return r


async def every_get(
    svc: RunningService, path_values: dict[str, str], query_values: dict[str, str]
) -> list[httpx.Response]:
    """Each GET in the service's OpenAPI, path parameters filled in; all must answer 200."""
    answers = []
    async with svc.client(ADMIN) as http:
        spec = (await http.get("/openapi.json")).json()
        for template, ops in spec["paths"].items():
            op = ops.get("get")
            if op is None:
                continue
            names = re.findall(r"{(\w+)}", template)
            assert set(names) <= path_values.keys(), f"no value for {template}'s parameters"
            path = template.format(**{n: path_values[n] for n in names})
            query = {
                p["name"]: query_values[p["name"]]
                for p in op.get("parameters", [])
                if p["in"] == "query" and p.get("required")
            }
            if template.endswith("/stream"):  # server-sent events: read what comes at once
                answers.append(await read_stream(http, path))
                continue
            r = await http.get(path, params=query)
            assert r.status_code == 200, (template, r.status_code, r.text)
            answers.append(r)
    return answers


async def read_stream(http: httpx.AsyncClient, path: str) -> httpx.Response:
    chunks = bytearray()
    async with http.stream("GET", path) as r:
        assert r.status_code == 200, path
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STREAM_SECONDS):
                async for chunk in r.aiter_bytes():
                    chunks.extend(chunk)
    assert b"data:" in chunks, "the stream sent none of the department's dispatches"
    return httpx.Response(200, content=bytes(chunks), request=r.request)


async def test_no_answer_log_or_event_holds_a_webhook_secret_or_tag_key(platform, caplog):
    p = platform
    forbidden: dict[bytes, str] = {}
    for name, receiver in p.receivers.items():
        forbidden |= secret_forms(f"webhook secret of {name}", receiver.secret)
    written: list[httpx.Response] = []

    # Secrets given at creation, by rotation, and alongside a change of URL.
    new_secret, rotated = generate_secret(), generate_secret(64)
    forbidden |= secret_forms("new department's secret", new_secret)
    forbidden |= secret_forms("rotated secret", rotated)
    async with p.notify.client(ADMIN) as http:
        written.append(
            await http.post(
                "/v1/departments",
                json={
                    "id": "flow-station-haiyu",
                    "name": "海裕流动人口服务站",
                    "type": "other",
                    "jurisdictions": ["440306001001"],
                    "webhook": {"url": "http://127.0.0.1:9/hook", "secret": new_secret},
                },
            )
        )
        written.append(
            await http.post(
                "/v1/departments/police-xinan/webhook-secrets", json={"secret": rotated}
            )
        )
        written.append(
            await http.patch(
                "/v1/departments/flow-station-haiyu", json={"webhook_url": "http://127.0.0.1:9/h2"}
            )
        )
    assert [r.status_code for r in written] == [201, 201, 200], [r.text for r in written]

    # Tag keys, in upper and in lower case hex; one proves an inspection that opens a hazard.
    keys = [os.urandom(16).hex().upper(), os.urandom(16).hex()]
    for i, key in enumerate(keys):
        forbidden |= tag_key_forms(f"tag key {i}", key)
    site = await secured_site(p, keys)
    written += site["answers"]
    inspection = await inspect_with_tag(p, site, keys[0])
    written.append(inspection)

    async def dispatched() -> list[dict[str, Any]]:
        async with p.notify.client(ADMIN) as http:
            return (await http.get("/v1/dispatches")).json()["items"]

    dispatch = next(d for d in await eventually(dispatched, timeout=30))
    async with p.inspection.client(ADMIN) as http:
        (hazard,) = (await http.get("/v1/hazards")).json()["items"]

    now = datetime.now(UTC)
    answers = await every_get(
        p.inspection,
        {
            "venue_type": "restaurant",
            "venue_id": site["venue"]["id"],
            "checkpoint_id": site["checkpoints"][0]["id"],
            "inspection_id": inspection.json()["id"],
            "sha256": inspection.json()["photos"][0].rsplit("/", 1)[-1],
            "hazard_id": hazard["id"],
        },
        {
            "checkpoint_id": site["checkpoints"][0]["id"],
            "since": (now - timedelta(days=30)).isoformat(),
            "until": (now + timedelta(days=1)).isoformat(),
        },
    )
    answers += await every_get(
        p.notify,
        {
            "code": p.city.grid_west,
            "dept_id": dispatch["department_id"],
            "rule_id": "hazard-major",
            "dispatch_id": dispatch["id"],
            "case_id": dispatch["case_id"],
        },
        {},
    )
    assert len(answers) > 30  # every GET of both services was read

    messages = await every_message(p.notify.ctx.settings.kafka_bootstrap_servers)
    assert {"inspection.v1", "notify.v1"} <= {topic for topic, _ in messages}
    leaks = [(str(r.request.url), found(r.content, forbidden)) for r in written + answers]
    leaks += [(topic, found(message, forbidden)) for topic, message in messages]
    leaks += [(logger, found(text, forbidden)) for logger, text in log_text(caplog.records)]
    assert [leak for leak in leaks if leak[1]] == []
