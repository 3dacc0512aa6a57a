"""Inspection submission: proof of presence, photos, answers, hazards, re-inspection."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from fastapi import UploadFile
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from gridgov_common.auth import Principal
from gridgov_common.db import utcnow
from gridgov_common.errors import Problem, conflict, invalid, not_found
from gridgov_common.events.inspection import CheckpointStatusChanged, InspectionRecorded

from . import catalogue, hazards, tagkeys
from .models import (
    Checkpoint,
    CheckTemplate,
    Inspection,
    InspectionPhoto,
    Rejection,
    SpotCheck,
    Venue,
)
from .photos import (
    MalformedPhoto,
    PhotoStorageFull,
    PhotoStore,
    PhotoTooLarge,
    PhotoTooManyPixels,
    UnsupportedPhotoType,
)
from .presence import PresenceError, ScanTimeError, check_presence, check_scan_time, distance_m
from .schemas import InspectionIn, InspectionOut
from .settings import Settings
from .sun import SunError, check_counter, verify_sun
from .venues import colour_of, items_for

CHUNK = 256 * 1024

# Refusals that count against the inspector in the evaluation (kind = problem slug).
PRESENCE_RULES = {
    "wrong-tag",
    "sun-required",
    "sun-cmac-invalid",
    "sun-counter-replayed",
    "scan-in-future",
    "scan-too-old",
    "scan-time-invalid",
    "gps-too-far",
}
PHOTO_RULES = {
    "photo-required",
    "photo-reused",
    "photo-too-large",
    "not-an-image",
    "photo-malformed",
    "photo-too-many-pixels",
}


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(CHUNK):
        yield chunk


async def _reject(ctx: Any, principal: Principal, cp: Checkpoint, problem: Problem) -> Problem:
    async with ctx.db.transaction() as session:
        session.add(
            Rejection(
                inspector=principal.subject,
                checkpoint_id=cp.id,
                grid_code=cp.grid_code,
                kind=problem.slug,
                detail=problem.detail,
                at=utcnow(),
            )
        )
    return problem


def check_proof(
    settings: Settings,
    cp: Checkpoint,
    body: InspectionIn,
    now: datetime,
) -> tuple[float, int | None]:
    """Every presence rule except the counter's freshness; returns (distance, SUN counter)."""
    uid = body.tag_uid.strip().upper()
    if uid != cp.tag_uid:
        raise Problem(
            422,
            "wrong-tag",
            f"scanned tag {uid} does not belong to checkpoint {cp.id}; scan the tag fixed there",
        )
    counter: int | None = None
    if cp.tag_key_enc is not None:
        if body.sun is None:
            raise Problem(
                422,
                "sun-required",
                "this checkpoint has a secure NTAG 424 tag: send the scan's uid, counter and cmac",
            )
        if body.sun.uid.upper() != cp.tag_uid:
            raise Problem(422, "wrong-tag", "the SUN message's UID is not this checkpoint's tag")
        key = tagkeys.unseal(settings, cp.tag_uid, cp.tag_key_enc)
        try:
            counter = verify_sun(key, body.sun.uid, body.sun.counter, body.sun.cmac)
        except SunError as exc:
            raise Problem(
                422,
                "sun-cmac-invalid",
                f"the secure tag's message does not verify ({exc}); scan the tag again",
            ) from exc
        try:
            check_counter(counter, cp.sun_counter)
        except SunError as exc:
            raise Problem(409, "sun-counter-replayed", str(exc)) from exc
    try:
        check_scan_time(
            body.scanned_at,
            now,
            timedelta(seconds=settings.scan_max_age_seconds),
            timedelta(seconds=settings.scan_max_skew_seconds),
        )
    except ScanTimeError as exc:
        if body.scanned_at.tzinfo is None:
            slug = "scan-time-invalid"
        else:
            slug = "scan-in-future" if body.scanned_at > now else "scan-too-old"
        raise Problem(422, slug, str(exc)) from exc
    try:
        check_presence(
            checkpoint_lon=cp.lon,
            checkpoint_lat=cp.lat,
            fix_lon=body.position[0],
            fix_lat=body.position[1],
            accuracy_m=body.accuracy_m,
            radius_m=settings.presence_radius_m,
            max_accuracy_m=settings.presence_max_accuracy_m,
        )
    except PresenceError as exc:
        raise Problem(422, "gps-too-far", str(exc)) from exc
    dist = distance_m(cp.lon, cp.lat, body.position[0], body.position[1])
    return dist, counter


def check_answers(body: InspectionIn, items: list[dict[str, Any]], version: int) -> dict[str, Any]:
    answers = {a.item_code: a for a in body.answers}
    if len(answers) != len(body.answers):
        raise invalid("answers-invalid", "each check item may be answered only once")
    wanted = {i["code"] for i in items}
    missing = sorted(wanted - answers.keys())
    extra = sorted(answers.keys() - wanted)
    if missing or extra:
        raise invalid(
            "answers-invalid",
            f"answer exactly the checkpoint's items of template v{version}: "
            f"missing {missing}, unknown {extra}",
            template_version=version,
            items=sorted(wanted),
        )
    return answers


async def store_photos(
    settings: Settings, store: PhotoStore, photos: list[UploadFile]
) -> list[Any]:
    stored = []
    for upload in photos:
        try:
            stored.append(
                await store.put_stream(
                    _chunks(upload), settings.photo_max_bytes, settings.photo_max_pixels
                )
            )
        except PhotoTooLarge as exc:
            raise Problem(
                413,
                "photo-too-large",
                f"photo {upload.filename!r} exceeds {settings.photo_max_bytes} bytes; "
                "send a smaller (compressed) photo",
            ) from exc
        except UnsupportedPhotoType as exc:
            raise Problem(
                415,
                "not-an-image",
                f"{upload.filename!r} is not a JPEG, PNG or HEIC image (judged by its content)",
            ) from exc
        except MalformedPhoto as exc:
            raise invalid(
                "photo-malformed",
                f"photo {upload.filename!r} is not a whole image: {exc}; "
                "send the file as the camera saved it",
            ) from exc
        except PhotoTooManyPixels as exc:
            raise invalid(
                "photo-too-many-pixels",
                f"photo {upload.filename!r}: {exc}; send a smaller (resized) photo",
            ) from exc
        except PhotoStorageFull as exc:
            # 507 Insufficient Storage, not 503: the service is up and every other request
            # works; only photo uploads wait for space. Not stored under the Idempotency-Key
            # (a 5xx), so the app's retry with the same key succeeds once space is freed.
            raise Problem(
                507,
                "photo-storage-full",
                "photo storage is full; keep the inspection on the device and retry later",
                title="Insufficient Storage",
                headers={"Retry-After": "300"},
            ) from exc
    return stored


async def submit(
    ctx: Any, principal: Principal, body: InspectionIn, photos: list[UploadFile]
) -> InspectionOut:
    settings: Settings = ctx.settings
    now = utcnow()
    async with ctx.db.sessions() as session:
        cp = await session.get(Checkpoint, body.checkpoint_id)
        if cp is None or not principal.covers(cp.grid_code):
            raise not_found("checkpoint", body.checkpoint_id)
        tpl = await catalogue.latest_template(session, cp.venue_type)
    if not cp.active:
        raise conflict("checkpoint-inactive", f"checkpoint {cp.id} is deactivated")
    assert tpl is not None
    items = items_for(cp, tpl)
    answers = check_answers(body, items, tpl.version)
    try:
        dist, counter = check_proof(settings, cp, body, now)
        needs_photo = settings.require_photo and tpl.requires_photo
        if needs_photo and not photos:
            raise Problem(422, "photo-required", "at least one photo of the checkpoint is required")
        if len(photos) > settings.max_photos:
            raise invalid("too-many-photos", f"at most {settings.max_photos} photos per inspection")
        stored = await store_photos(settings, ctx.state["photos"], photos)
        return await _record(
            ctx, principal, body, cp, tpl, items, answers, stored, dist, counter, now
        )
    except Problem as problem:
        if problem.slug in PRESENCE_RULES | PHOTO_RULES:
            await _reject(ctx, principal, cp, problem)
        raise


async def _record(
    ctx: Any,
    principal: Principal,
    body: InspectionIn,
    cp0: Checkpoint,
    tpl: CheckTemplate,
    items: list[dict[str, Any]],
    answers: dict[str, Any],
    stored: list[Any],
    dist: float,
    counter: int | None,
    now: datetime,
) -> InspectionOut:
    hashes = list(dict.fromkeys(p.sha256 for p in stored))
    items_by_code = {i["code"]: i for i in items}
    failed = [c for c, a in answers.items() if a.result == "fail"]
    try:
        async with _writer(ctx), ctx.db.transaction() as session:
            cp = await session.get(Checkpoint, cp0.id, with_for_update=True)
            assert cp is not None
            venue = await session.get(Venue, cp.venue_id)
            assert venue is not None
            if hashes:
                reused = (
                    await session.scalars(
                        select(InspectionPhoto.sha256).where(InspectionPhoto.sha256.in_(hashes))
                    )
                ).all()
                if reused:
                    raise _photo_reused(reused)
            if counter is not None:
                # Atomic: of two scans racing with one counter, exactly one advances it.
                res = await session.execute(
                    update(Checkpoint)
                    .where(Checkpoint.id == cp.id)
                    .where((Checkpoint.sun_counter.is_(None)) | (Checkpoint.sun_counter < counter))
                    .values(sun_counter=counter)
                    .execution_options(synchronize_session=False)
                )
                if res.rowcount != 1:
                    raise Problem(
                        409,
                        "sun-counter-replayed",
                        f"SUN counter {counter} was already used: replayed or copied tag URL",
                    )
            spot = None
            if body.spot_check_id:
                spot = await session.get(SpotCheck, body.spot_check_id)
                if spot is None or spot.checkpoint_id != cp.id:
                    raise not_found("spot check for this checkpoint", body.spot_check_id)
                if spot.state != "pending":
                    raise conflict("spot-check-done", f"spot check {spot.id} is already done")
                if spot.assigned_inspector != principal.subject:
                    raise Problem(
                        403,
                        "spot-check-not-assigned",
                        f"spot check {spot.id} is assigned to {spot.assigned_inspector}",
                    )
            open_before = await hazards.open_hazards_of(session, cp.id)
            inspection = Inspection(
                id=str(uuid.uuid4()),
                checkpoint_id=cp.id,
                venue_id=cp.venue_id,
                grid_code=cp.grid_code,
                inspector=principal.subject,
                tag_uid=cp.tag_uid,
                scanned_at=body.scanned_at,
                sun_counter=counter,
                lon=body.position[0],
                lat=body.position[1],
                accuracy_m=body.accuracy_m,
                distance_m=round(dist, 1),
                template_version=tpl.version,
                answers=[a.model_dump() for a in body.answers],
                passed=not failed,
                failed_items=failed,
                is_reinspection=bool(open_before),
                spot_check_id=body.spot_check_id,
                due_at=cp.due_at,
                on_time=now <= cp.due_at,
                created_at=now,
            )
            session.add(inspection)
            await session.flush()
            for p in stored:
                if p.sha256 in hashes:
                    session.add(
                        InspectionPhoto(
                            sha256=p.sha256,
                            inspection_id=inspection.id,
                            size=p.size,
                            content_type=p.content_type,
                            created_at=now,
                        )
                    )
                    hashes.remove(p.sha256)
            await session.flush()
            all_hashes = [p.sha256 for p in stored]
            closed, reopened = await hazards.apply_reinspection(
                session,
                ctx,
                open_before,
                answers,
                actor=principal.subject,
                inspection_id=inspection.id,
                at=now,
            )
            still_open = {h.item_code for h in open_before if h.id not in closed}
            opened = []
            for code in failed:
                if code in still_open:
                    continue
                a = answers[code]
                item = items_by_code[code]
                h = await hazards.open_hazard(
                    session,
                    ctx,
                    ctx.settings,
                    cp=cp,
                    venue=venue,
                    inspection=inspection,
                    item=item,
                    severity=a.severity or item.get("severity", "general"),
                    note=a.note,
                    photo_hashes=list(dict.fromkeys(all_hashes)),
                    at=now,
                )
                opened.append(h.id)
            await session.flush()
            if spot is not None:
                original = await session.get(Inspection, spot.inspection_id)
                assert original is not None
                spot.agreed = original.passed == inspection.passed and set(
                    original.failed_items
                ) == set(inspection.failed_items)
                spot.state = "done"
                spot.result_inspection_id = inspection.id
                spot.completed_at = now
            # Next due date, hazards and colour: kept on the row for set-based status.
            before = cp.colour
            cp.last_inspected_at = now
            cp.due_at = now + timedelta(days=cp.effective_cycle_days)
            cp.open_hazards = await hazards.count_open(session, cp.id)
            cp.colour = colour_of(cp, now)
            await ctx.publish(
                session,
                InspectionRecorded(
                    inspection_id=inspection.id,
                    checkpoint_id=cp.id,
                    venue_id=cp.venue_id,
                    grid_code=cp.grid_code,
                    inspector=principal.subject,
                    passed=inspection.passed,
                    failed_items=failed,
                    is_reinspection=inspection.is_reinspection,
                    recorded_at=now,
                ),
                subject=inspection.id,
                gridcode=cp.grid_code,
            )
            if cp.colour != before:
                await ctx.publish(
                    session,
                    CheckpointStatusChanged(
                        checkpoint_id=cp.id,
                        venue_id=cp.venue_id,
                        grid_code=cp.grid_code,
                        location=(cp.lon, cp.lat),
                        from_colour=before,
                        to_colour=cp.colour,
                        at=now,
                    ),
                    subject=cp.id,
                    gridcode=cp.grid_code,
                )
    except IntegrityError as exc:
        # Two submissions racing with the same photo: the unique hash lets only one win.
        raise _photo_reused([p.sha256 for p in stored]) from exc
    return inspection_out(
        inspection, [p.sha256 for p in stored], opened=opened, closed=closed, reopened=reopened
    )


def _writer(ctx: Any) -> Any:
    """SQLite has one writer: queue submissions in-process instead of letting 32 of them spin
    in SQLite's sleeping busy handler (which is what makes the p99 latency explode).
    PostgreSQL needs no such lock (row locks do the work)."""
    if not ctx.db.is_sqlite:
        return contextlib.nullcontext()
    lock = ctx.state.get("sqlite_write_lock")
    if lock is None:
        lock = ctx.state["sqlite_write_lock"] = asyncio.Lock()
    return lock


def _photo_reused(hashes: Any) -> Problem:
    return Problem(
        409,
        "photo-reused",
        "a photo was already used in another inspection; take a new photo on site",
        photos=list(hashes),
    )


def inspection_out(
    i: Inspection,
    photos: list[str],
    *,
    opened: list[str] | None = None,
    closed: list[str] | None = None,
    reopened: list[str] | None = None,
) -> InspectionOut:
    return InspectionOut(
        id=i.id,
        checkpoint_id=i.checkpoint_id,
        venue_id=i.venue_id,
        grid_code=i.grid_code,
        inspector=i.inspector,
        scanned_at=i.scanned_at,
        template_version=i.template_version,
        passed=i.passed,
        failed_items=i.failed_items,
        is_reinspection=i.is_reinspection,
        on_time=i.on_time,
        distance_m=i.distance_m,
        photos=list(dict.fromkeys(photos)),
        hazards_opened=opened or [],
        hazards_closed=closed or [],
        hazards_reopened=reopened or [],
        spot_check_id=i.spot_check_id,
        created_at=i.created_at,
    )
