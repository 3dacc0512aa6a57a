"""A full photo volume refuses uploads with 507 and nothing else: found by the reliability
suite (``python -m reliability``), which fills the photo filesystem under load. It answered
503, which a mobile app treats as "service down" and retries at once; only uploads are
affected, so the answer is 507 Insufficient Storage with Retry-After, and nothing is stored,
so the same Idempotency-Key succeeds once there is room."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gridgov_common.testing import token_for
from gridgov_inspection.models import Inspection

from .conftest import answers_for, jpeg, make_site, submission, submit
from .test_inspections import P, _count

ADMIN = token_for(roles=["admin"], scopes=["440306"])


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs (the suite and CI run as root, which mounting needs)."""
    where = tmp_path / "photos"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(volume: Path) -> Path:
    filler = volume / ".filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 16, 1 << 12):
            with contextlib.suppress(OSError):  # ENOSPC: full
                while os.write(fd, b"\0" * size):
                    pass
    finally:
        os.close(fd)
    return filler


async def test_full_photo_volume_is_507_then_the_same_upload_succeeds(
    launch, grid, city, small_volume
):
    async with launch(
        "inspection", grid_svc_url=grid.url, photo_dir=str(small_volume), sweep_enabled=False
    ) as insp:
        site = await make_site(insp, city)
        answers = await answers_for(insp, "restaurant")
        filler = _fill(small_volume)
        body = submission(site, answers)
        photo = [("scene.jpg", jpeg(8000))]
        key = {"Idempotency-Key": "device-1-upload-1"}
        r = await submit(insp, body, photo, headers=key)
        assert r.status_code == 507, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["type"] == P + "photo-storage-full"
        assert r.headers["retry-after"]
        assert await _count(insp, Inspection) == 0
        assert not [p for p in small_volume.rglob("*") if p != filler]  # no partial photo

        # Everything that needs no new photo still works.
        async with insp.client(ADMIN) as http:
            assert (await http.get(f"/v1/checkpoints/{site.checkpoint['id']}")).status_code == 200

        filler.unlink()
        r = await submit(insp, body, photo, headers=key)
        assert r.status_code == 201, r.text
        assert await _count(insp, Inspection) == 1
