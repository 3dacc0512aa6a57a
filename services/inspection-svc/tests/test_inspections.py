"""Inspection submission: proof of presence, photos, SUN tags, idempotency."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, select

from gridgov_common.demo.photos import encode_png, gradient_photo, jpeg_around
from gridgov_inspection.models import Inspection, Rejection

from .conftest import (
    INSPECTOR,
    SUN_UID,
    ZERO_KEY,
    answers_for,
    jpeg,
    make_site,
    outbox_events,
    submission,
    submit,
)

P = "urn:gridgov:problem:"


async def _count(svc, model) -> int:
    async with svc.ctx.db.sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(model)))


async def test_passing_inspection_is_recorded_with_template_version(insp, city):
    site = await make_site(insp, city)
    answers = await answers_for(insp, "restaurant")
    r = await submit(insp, submission(site, answers))
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["passed"] is True and out["template_version"] == 1 and out["on_time"] is True
    assert len(out["photos"]) == 1 and out["distance_m"] < 1
    async with insp.client(INSPECTOR) as http:
        cp = (await http.get(f"/v1/checkpoints/{site.checkpoint['id']}")).json()
        photo = await http.get(f"/v1/photos/{out['photos'][0]}")
    assert cp["last_inspected_at"] is not None and cp["colour"] == "green"
    assert photo.status_code == 200 and photo.content.startswith(b"\xff\xd8\xff")
    recorded = await outbox_events(insp, "inspection.recorded")
    assert recorded[0]["data"]["passed"] is True and recorded[0]["gridcode"] == city.grid_west


async def test_every_bad_input_is_a_clear_4xx_and_nothing_is_recorded(insp, city):
    site = await make_site(insp, city)
    answers = await answers_for(insp, "restaurant")
    now = datetime.now(UTC)
    lon, lat = site.point
    cases = [
        ("wrong tag", submission(site, answers, tag_uid="04AABBCCDDEEFF"), None, 422, "wrong-tag"),
        (
            "GPS 500 m away",
            submission(site, answers, position=[lon + 0.00487, lat]),
            None,
            422,
            "gps-too-far",
        ),
        (
            "GPS far, huge accuracy claim is capped",
            submission(site, answers, position=[lon + 0.00487, lat], accuracy_m=5000),
            None,
            422,
            "gps-too-far",
        ),
        (
            "future scan",
            submission(site, answers, scanned_at=(now + timedelta(hours=1)).isoformat()),
            None,
            422,
            "scan-in-future",
        ),
        (
            "stale scan",
            submission(site, answers, scanned_at=(now - timedelta(days=1)).isoformat()),
            None,
            422,
            "scan-too-old",
        ),
        (
            "naive scan time",
            submission(site, answers, scanned_at=now.replace(tzinfo=None).isoformat()),
            None,
            422,
            "scan-time-invalid",
        ),
        ("no photo", submission(site, answers), [], 422, "photo-required"),
        (
            "text file named .jpg",
            submission(site, answers),
            [("photo.jpg", b"this is not an image, just text\n" * 10)],
            415,
            "not-an-image",
        ),
        ("missing answers", submission(site, answers[:2]), None, 422, "answers-invalid"),
    ]
    for what, body, photos, status, slug in cases:
        r = await submit(insp, body, photos)
        assert r.status_code == status, (what, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["type"] == P + slug, (what, r.json())
    assert await _count(insp, Inspection) == 0
    assert await _count(insp, Rejection) == 8  # answers-invalid is not a presence/photo rule


async def test_fifty_megabyte_photo_is_413(insp, city):
    site = await make_site(insp, city)
    answers = await answers_for(insp, "restaurant")
    big = jpeg(50 * 1024 * 1024)
    r = await submit(insp, submission(site, answers), [("big.jpg", big)])
    assert r.status_code == 413, r.text[:300]
    assert r.json()["type"] == P + "photo-too-large"
    assert await _count(insp, Inspection) == 0


async def test_malformed_and_bomb_photos_are_refused_with_what_to_fix(insp, city):
    site = await make_site(insp, city)
    answers = await answers_for(insp, "restaurant")
    whole = jpeg(5000)
    png = gradient_photo((10, 120, 200))
    cases = [
        ("cut-off JPEG", whole[: len(whole) // 2], 422, "photo-malformed", "cut off"),
        ("JPEG without a frame", whole[:2] + whole[20 + 19 :], 422, "photo-malformed", "frame"),
        ("cut-off PNG", png[:-30], 422, "photo-malformed", "cut off"),
        # A few hundred bytes declaring 10^10 pixels: whatever decodes it later would need
        # tens of gigabytes.
        (
            "PNG bomb",
            encode_png(100_000, 100_000, b"", b"bomb"),
            422,
            "photo-too-many-pixels",
            "100000 x 100000",
        ),
        (
            "JPEG bomb",
            jpeg_around(b"\x00" * 100, (65_000, 65_000)),
            422,
            "photo-too-many-pixels",
            "",
        ),
        ("a zip named .jpg", b"PK\x03\x04" + bytes(500), 415, "not-an-image", "JPEG, PNG or HEIC"),
    ]
    for what, data, status, slug, words in cases:
        async with insp.client(INSPECTOR) as http:
            r = await http.post(
                "/v1/inspections",
                data={"inspection": json.dumps(submission(site, answers))},
                files=[("photos", ("scene.jpg", data, "image/jpeg"))],  # claims to be a JPEG
            )
        assert r.status_code == status, (what, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"] == P + slug, (what, r.json())
        assert words in r.json()["detail"] and "scene.jpg" in r.json()["detail"], r.json()
    assert await _count(insp, Inspection) == 0
    photo_dir = Path(insp.ctx.settings.photo_dir)
    assert [p for p in photo_dir.rglob("*") if p.is_file()] == []  # nothing kept, not even temp
    # The real photos these were cut from are accepted; a hostile file name is only a name.
    r = await submit(
        insp, submission(site, answers), [("../../../etc/passwd", whole), ("b.png", png)]
    )
    assert r.status_code == 201, r.text
    stored = sorted(p.name for p in photo_dir.rglob("*") if p.is_file())
    assert stored == sorted(r.json()["photos"])  # content-addressed, inside the photo store


async def test_reused_photo_is_rejected_across_inspections(insp, city):
    a = await make_site(insp, city)
    b = await make_site(insp, city, venue_type="shop")
    photo = jpeg()
    r = await submit(insp, submission(a, await answers_for(insp, "restaurant")), [("p.jpg", photo)])
    assert r.status_code == 201, r.text
    r = await submit(insp, submission(b, await answers_for(insp, "shop")), [("q.jpg", photo)])
    assert r.status_code == 409
    assert r.json()["type"] == P + "photo-reused"
    assert await _count(insp, Inspection) == 1


async def test_secure_tag_sun_valid_then_replayed_then_forged(insp, city):
    site = await make_site(insp, city, tag_uid=SUN_UID, tag_key=ZERO_KEY)
    answers = await answers_for(insp, "restaurant")
    sun = {"uid": SUN_UID, "counter": "000006", "cmac": "4B00064004B0B3D3"}
    r = await submit(insp, submission(site, answers))
    assert r.json()["type"] == P + "sun-required"
    r = await submit(insp, submission(site, answers, sun=sun))
    assert r.status_code == 201, r.text
    r = await submit(insp, submission(site, answers, sun=sun))
    assert r.status_code == 409
    assert r.json()["type"] == P + "sun-counter-replayed"
    forged = sun | {"counter": "000007", "cmac": "4B00064004B0B3D3"}
    r = await submit(insp, submission(site, answers, sun=forged))
    assert r.status_code == 422
    assert r.json()["type"] == P + "sun-cmac-invalid"
    assert await _count(insp, Inspection) == 1


async def test_idempotent_triple_upload_creates_one_inspection(insp, city):
    site = await make_site(insp, city)
    body = submission(site, await answers_for(insp, "restaurant"))
    # Build the multipart body once: an offline device retries the very same bytes.
    request = httpx.Request(
        "POST",
        f"{insp.url}/v1/inspections",
        data={"inspection": json.dumps(body)},
        files=[("photos", ("a.jpg", jpeg(), "image/jpeg"))],
    )
    content = request.read()
    headers = {
        "Authorization": f"Bearer {INSPECTOR}",
        "Idempotency-Key": "device-42-upload-7",
        "Content-Type": request.headers["content-type"],
    }
    results = []
    async with httpx.AsyncClient(timeout=30) as http:
        for _ in range(3):
            results.append(
                await http.post(f"{insp.url}/v1/inspections", content=content, headers=headers)
            )
    assert [r.status_code for r in results] == [201, 201, 201], [r.text for r in results]
    assert len({r.json()["id"] for r in results}) == 1
    assert results[1].headers.get("idempotent-replayed") == "true"
    assert await _count(insp, Inspection) == 1
    assert len(await outbox_events(insp, "inspection.recorded")) == 1


async def test_inspector_out_of_scope_sees_404(insp, city):
    from gridgov_common.testing import token_for

    site = await make_site(insp, city)
    other = token_for(roles=["inspector"], scopes=["440307"], subject="x")
    r = await submit(insp, submission(site, await answers_for(insp, "restaurant")), token=other)
    assert r.status_code == 404


async def test_racing_submissions_cannot_share_a_photo_or_a_sun_counter(insp, city):
    import asyncio

    a = await make_site(insp, city)
    b = await make_site(insp, city)
    photo = jpeg()
    answers = await answers_for(insp, "restaurant")
    results = await asyncio.gather(
        submit(insp, submission(a, answers), [("p.jpg", photo)]),
        submit(insp, submission(b, answers), [("p.jpg", photo)]),
    )
    assert sorted(r.status_code for r in results) == [201, 409]
    secure = await make_site(insp, city, tag_uid=SUN_UID, tag_key=ZERO_KEY)
    sun = {"uid": SUN_UID, "counter": "000006", "cmac": "4B00064004B0B3D3"}
    results = await asyncio.gather(
        *(submit(insp, submission(secure, answers, sun=sun)) for _ in range(3))
    )
    assert sorted(r.status_code for r in results) == [201, 409, 409]
    assert await _count(insp, Inspection) == 2


async def test_photo_types_by_magic_bytes(insp, city):
    site = await make_site(insp, city)
    answers = await answers_for(insp, "restaurant")
    png = gradient_photo((200, 80, 40))
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(range(100))
    r = await submit(insp, submission(site, answers), [("a.png", png), ("b.heic", heic)])
    assert r.status_code == 201, r.text
    assert len(r.json()["photos"]) == 2


async def test_a_checkpoints_inspections_newest_first_with_photos_in_scope_only(insp, city):
    from gridgov_common.testing import token_for

    site = await make_site(insp, city)
    first = await submit(insp, submission(site, await answers_for(insp, "restaurant")))
    failing = await answers_for(insp, "restaurant", fail={"exits_clear"})
    second = await submit(
        insp, submission(site, failing), photos=[("a.jpg", jpeg()), ("b.jpg", jpeg())]
    )
    assert first.status_code == second.status_code == 201
    cp = site.checkpoint["id"]
    async with insp.client(INSPECTOR) as http:
        page = (await http.get("/v1/inspections", params={"checkpoint_id": cp})).json()
        one = (await http.get("/v1/inspections", params={"checkpoint_id": cp, "limit": 1})).json()
        missing = await http.get("/v1/inspections", params={"checkpoint_id": "nope"})
        too_many = await http.get("/v1/inspections", params={"checkpoint_id": cp, "limit": 500})
    assert [i["id"] for i in page["items"]] == [second.json()["id"], first.json()["id"]]
    assert sorted(page["items"][0]["photos"]) == sorted(second.json()["photos"])
    assert len(page["items"][0]["photos"]) == 2 and page["items"][0]["passed"] is False
    assert [i["id"] for i in one["items"]] == [second.json()["id"]]
    assert missing.status_code == 404 and too_many.status_code == 422
    other = token_for(roles=["viewer"], scopes=[city.other_street])
    async with insp.client(other) as http:
        hidden = await http.get("/v1/inspections", params={"checkpoint_id": cp})
    assert hidden.status_code == 404
