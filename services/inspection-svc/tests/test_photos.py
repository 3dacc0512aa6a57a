import errno
import hashlib
import os
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gridgov_common.demo.photos import encode_png, jpeg_around
from gridgov_inspection.photos import (
    InvalidPhotoId,
    PhotoBackend,
    PhotoStorageFull,
    PhotoStore,
    PhotoTooLarge,
    UnsupportedPhotoType,
    detect_image_type,
)

JPEG = jpeg_around(bytes(range(256)) * 40)
PNG = encode_png(2, 1, b"\x00" + bytes(6), b"test")


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body


async def stream(data: bytes, chunk: int = 1000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), chunk):
        yield data[i : i + chunk]


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


# --- detect_image_type -------------------------------------------------------------------


def test_detect_jpeg_png() -> None:
    assert detect_image_type(JPEG[:16]) == "image/jpeg"
    assert detect_image_type(PNG[:16]) == "image/png"


@pytest.mark.parametrize("brand", [b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1"])
def test_detect_heic_major_brand(brand: bytes) -> None:
    assert detect_image_type(ftyp(brand, b"mif1") + b"\x00" * 32) == "image/heic"


def test_detect_heic_compatible_brand() -> None:
    assert detect_image_type(ftyp(b"isom", b"iso8", b"heim", b"heis")) == "image/heic"


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"\xff\xd8",  # truncated JPEG magic
        b"hello, this is a text file named photo.jpg\n",
        b"\x89PNG\r\n",  # truncated PNG signature
        ftyp(b"isom", b"mp41"),  # MP4 video
        ftyp(b"avif", b"mif1", b"miaf"),  # AVIF shares mif1 but is not HEIC
        b"GIF89a" + b"\x00" * 20,
    ],
)
def test_detect_rejects(head: bytes) -> None:
    assert detect_image_type(head) is None


def test_brands_outside_box_are_ignored() -> None:
    # A "heic" brand after the ftyp box ends must not count.
    head = ftyp(b"isom", b"mp41") + b"heic" * 4
    assert detect_image_type(head) is None


# --- PhotoStore ----------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> PhotoStore:
    return PhotoStore(tmp_path / "photos")


def test_store_satisfies_backend_protocol(store: PhotoStore) -> None:
    backend: PhotoBackend = store
    assert backend is store


@pytest.mark.asyncio
async def test_put_and_read_back(store: PhotoStore) -> None:
    photo = await store.put_stream(stream(JPEG), max_bytes=1_000_000)
    sha = hashlib.sha256(JPEG).hexdigest()
    assert (photo.sha256, photo.size, photo.content_type) == (sha, len(JPEG), "image/jpeg")
    assert store.path(sha) == store.root / sha[:2] / sha
    with store.open(sha) as f:
        assert f.read() == JPEG
    assert files_under(store.root) == [store.path(sha)]  # no temp file left


@pytest.mark.asyncio
async def test_tiny_chunks_still_detected(store: PhotoStore) -> None:
    photo = await store.put_stream(stream(PNG, chunk=1), max_bytes=1_000)
    assert photo.content_type == "image/png"


@pytest.mark.asyncio
async def test_heic_shorter_than_head(store: PhotoStore) -> None:
    data = ftyp(b"heic", b"mif1")
    photo = await store.put_stream(stream(data), max_bytes=1_000)
    assert photo.content_type == "image/heic"


@pytest.mark.asyncio
async def test_same_photo_twice_one_file(store: PhotoStore) -> None:
    a = await store.put_stream(stream(JPEG), max_bytes=1_000_000)
    b = await store.put_stream(stream(JPEG, chunk=777), max_bytes=1_000_000)
    assert a == b
    assert files_under(store.root) == [store.path(a.sha256)]


@pytest.mark.asyncio
async def test_50mb_stream_rejected_without_final_file(store: PhotoStore) -> None:
    mib = 1024 * 1024
    consumed = 0

    async def big() -> AsyncIterator[bytes]:
        nonlocal consumed
        block = JPEG[:16] + bytes(mib - 16)
        for _ in range(50):
            consumed += 1
            yield block

    with pytest.raises(PhotoTooLarge):
        await store.put_stream(big(), max_bytes=10 * mib)
    assert consumed == 11  # stopped at the first chunk over the limit, not after 50 MB
    assert files_under(store.root) == []


@pytest.mark.asyncio
async def test_exact_limit_is_allowed(store: PhotoStore) -> None:
    photo = await store.put_stream(stream(JPEG), max_bytes=len(JPEG))
    assert photo.size == len(JPEG)


@pytest.mark.asyncio
async def test_text_file_named_jpg_rejected(store: PhotoStore, tmp_path: Path) -> None:
    fake = tmp_path / "evidence.jpg"
    fake.write_text("not really a photo\n" * 100)
    with pytest.raises(UnsupportedPhotoType):
        await store.put_stream(stream(fake.read_bytes()), max_bytes=1_000_000)
    assert files_under(store.root) == []


@pytest.mark.asyncio
async def test_empty_upload_rejected(store: PhotoStore) -> None:
    with pytest.raises(UnsupportedPhotoType):
        await store.put_stream(stream(b""), max_bytes=1_000)
    assert files_under(store.root) == []


@pytest.mark.asyncio
async def test_disk_full_cleans_up(store: PhotoStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*_args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("gridgov_inspection.photos.os.fsync", full)
    with pytest.raises(PhotoStorageFull) as exc:
        await store.put_stream(stream(JPEG), max_bytes=1_000_000)
    assert exc.value.errno == errno.ENOSPC
    assert isinstance(exc.value, OSError)
    assert files_under(store.root) == []


@pytest.mark.asyncio
async def test_stream_error_cleans_up(store: PhotoStore) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield JPEG
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await store.put_stream(broken(), max_bytes=1_000_000)
    assert files_under(store.root) == []


@pytest.mark.parametrize(
    "sha",
    [
        "../../etc/passwd",
        "../" + "a" * 61,
        "A" * 64,  # uppercase
        "a" * 63,
        "a" * 65,
        "a" * 64 + "\n",
        "/" + "a" * 63,
        "",
    ],
)
def test_path_traversal_sha_rejected(store: PhotoStore, sha: str) -> None:
    with pytest.raises(InvalidPhotoId):
        store.path(sha)
    with pytest.raises(InvalidPhotoId):
        store.open(sha)


def test_open_missing(store: PhotoStore) -> None:
    with pytest.raises(FileNotFoundError):
        store.open("0" * 64)
