"""Photo intake: magic-byte type detection, a structural check and content-addressed storage.

The type is judged by content, never by the name or the declared Content-Type. A JPEG or PNG
must also be whole (not cut off in transit) and declare sane dimensions: a few bytes can
declare a picture of billions of pixels that would exhaust any viewer or thumbnailer that
decodes it later. The check reads only the file's structure; pixels are never decoded.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import re
import struct
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

__all__ = [
    "InvalidPhotoId",
    "MalformedPhoto",
    "PhotoBackend",
    "PhotoStorageFull",
    "PhotoStore",
    "PhotoTooLarge",
    "PhotoTooManyPixels",
    "StoredPhoto",
    "UnsupportedPhotoType",
    "detect_image_type",
]

# Enough for JPEG/PNG signatures and an ISO-BMFF ftyp box with a few compatible brands.
HEAD_BYTES = 64

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1", b"heim", b"heis"})
# AVIF shares the generic mif1/msf1 brands; it is not HEIC, so don't label it as such.
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
# Above any photo that fits the byte limit (a 10 MB JPEG holds some 50 MP), far below the
# billions a decoding bomb declares.
MAX_PIXELS = 100_000_000


class PhotoTooLarge(ValueError):
    """The upload exceeded the byte limit."""


class UnsupportedPhotoType(ValueError):
    """The upload is not a JPEG, PNG or HEIC image (judged by content, not name)."""


class MalformedPhoto(ValueError):
    """The upload starts like a JPEG or PNG but is not a whole one (e.g. cut off)."""


class PhotoTooManyPixels(ValueError):
    """The image declares more pixels than the limit."""


class InvalidPhotoId(ValueError):
    """A photo id is not a 64-character lowercase SHA-256 hex digest."""


class PhotoStorageFull(OSError):
    """The storage volume ran out of space while writing the photo."""


@dataclass(frozen=True, slots=True)
class StoredPhoto:
    sha256: str
    size: int
    content_type: str


def _heif_brands(head: bytes) -> set[bytes]:
    """Major + compatible brands of a leading ISO-BMFF ``ftyp`` box, or empty."""
    if len(head) < 12 or head[4:8] != b"ftyp":
        return set()
    (box_size,) = struct.unpack(">I", head[:4])
    brands = {head[8:12]}
    # Compatible brands start after major brand + minor version; stay inside the box
    # (size 0 means "box runs to end of file").
    end = len(head) if box_size == 0 else min(box_size, len(head))
    brands.update(head[i : i + 4] for i in range(16, end - 3, 4))
    return brands


def detect_image_type(head: bytes) -> str | None:
    """Return the MIME type of an image from its first bytes, or None if unsupported."""
    if head.startswith(_JPEG_MAGIC):
        return "image/jpeg"
    if head.startswith(_PNG_MAGIC):
        return "image/png"
    brands = _heif_brands(head)
    if brands & _HEIF_BRANDS and not brands & _AVIF_BRANDS:
        return "image/heic"
    return None


def _validate_sha(sha256: str) -> str:
    # Ids come from URLs: only the exact digest form may reach the filesystem.
    if not isinstance(sha256, str) or not _SHA256_RE.fullmatch(sha256):
        raise InvalidPhotoId("invalid photo id: expected 64 lowercase hex characters")
    return sha256


# Storage seam: a local-disk store today; an S3 backend can implement the same two methods.
class PhotoBackend(Protocol):
    async def put_stream(
        self, chunks: AsyncIterator[bytes], max_bytes: int, max_pixels: int = ...
    ) -> StoredPhoto: ...

    def open(self, sha256: str) -> BinaryIO: ...


class PhotoStore:
    """Content-addressed photo store on local disk: ``<root>/<sha[:2]>/<sha>``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        sha = _validate_sha(sha256)
        return self.root / sha[:2] / sha

    def open(self, sha256: str) -> BinaryIO:
        """Open a stored photo for reading; raises FileNotFoundError if absent."""
        return self.path(sha256).open("rb")

    async def put_stream(
        self, chunks: AsyncIterator[bytes], max_bytes: int, max_pixels: int = MAX_PIXELS
    ) -> StoredPhoto:
        """Stream an upload to disk while hashing; store it under its SHA-256.

        Raises PhotoTooLarge as soon as ``max_bytes`` is exceeded, UnsupportedPhotoType
        once the head is read and is not an image, MalformedPhoto or PhotoTooManyPixels
        when a new photo fails the structural check, PhotoStorageFull on ENOSPC. The temp
        file is removed on every failure, so no partial photo is ever visible.
        """
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        # Temp file in the store root: same filesystem, so the final rename is atomic.
        fd, tmp_name = tempfile.mkstemp(dir=self.root, prefix=".incoming-", suffix=".part")
        tmp = Path(tmp_name)
        keep_tmp = False
        try:
            with os.fdopen(fd, "wb") as f:
                digest = hashlib.sha256()
                size = 0
                head = b""
                content_type: str | None = None
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise PhotoTooLarge(f"photo exceeds the {max_bytes} byte limit")
                    if content_type is None and len(head) < HEAD_BYTES:
                        head += chunk[: HEAD_BYTES - len(head)]
                        if len(head) >= HEAD_BYTES:
                            content_type = _require_image(head)
                    digest.update(chunk)
                    # Local page-cache writes are quick; the slow fsync runs off the loop.
                    f.write(chunk)
                if content_type is None:
                    content_type = _require_image(head)  # upload shorter than HEAD_BYTES
                f.flush()
                sha = digest.hexdigest()
                final = self.path(sha)
                if not final.exists():  # else the same bytes were checked and stored before
                    await asyncio.to_thread(
                        _check_and_store, f.fileno(), tmp, final, content_type, max_pixels
                    )
                    keep_tmp = True  # renamed: it is the final file now
            return StoredPhoto(sha256=sha, size=size, content_type=content_type)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise PhotoStorageFull(exc.errno, "photo storage is full") from exc
            raise
        finally:
            if not keep_tmp:
                _discard(tmp)


def _require_image(head: bytes) -> str:
    content_type = detect_image_type(head)
    if content_type is None:
        raise UnsupportedPhotoType("not a JPEG, PNG or HEIC image")
    return content_type


def _discard(tmp: Path) -> None:
    # A single unlink is cheap and must run even while the task is being cancelled, so it
    # stays synchronous instead of going through a thread.
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()


def _check_and_store(fd: int, tmp: Path, final: Path, content_type: str, max_pixels: int) -> None:
    with tmp.open("rb") as f:
        check_structure(f, content_type, max_pixels)
    _fsync_and_rename(fd, tmp, final)


def _fsync_and_rename(fd: int, tmp: Path, final: Path) -> None:
    # Data must be durable before the name appears, or a crash could leave a torn photo.
    os.fsync(fd)
    final.parent.mkdir(exist_ok=True)
    # os.replace: atomic; a concurrent upload of the same bytes just rewrites identical data.
    os.replace(tmp, final)
    # Persist the directory entry too, so the rename survives a power loss.
    dir_fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# --- structural check ----------------------------------------------------------------------


def check_structure(f: BinaryIO, content_type: str, max_pixels: int) -> None:
    """Raise MalformedPhoto unless ``f`` is a whole JPEG or PNG; PhotoTooManyPixels if it
    declares more than ``max_pixels``. HEIC is taken on its type box alone."""
    if content_type == "image/jpeg":
        width, height = _jpeg_dimensions(f)
    elif content_type == "image/png":
        width, height = _png_dimensions(f)
    else:
        return
    if width <= 0 or height <= 0:
        raise MalformedPhoto(f"the image declares {width} x {height} pixels")
    if width * height > max_pixels:
        raise PhotoTooManyPixels(
            f"the image declares {width} x {height} pixels, more than {max_pixels}"
        )


# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic), not DHT/JPG/DAC.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field: TEM and the restart markers.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


def _jpeg_dimensions(f: BinaryIO) -> tuple[int, int]:
    """Walk the segments up to the first scan, then find the end-of-image marker."""
    f.seek(2)  # past SOI
    size: tuple[int, int] | None = None
    while True:
        marker = _next_marker(f)
        if marker in _STANDALONE:
            continue
        if marker == 0xD9:
            raise MalformedPhoto("the JPEG ends before its image data")
        length = _read(f, 2, "JPEG")
        (n,) = struct.unpack(">H", length)
        if n < 2:
            raise MalformedPhoto("a JPEG segment has an impossible length")
        if marker in _SOF:
            frame = _read(f, 5, "JPEG")
            _precision, height, width = struct.unpack(">BHH", frame)
            size = (width, height)
            f.seek(n - 7, os.SEEK_CUR)
        else:
            f.seek(n - 2, os.SEEK_CUR)
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            break
    if size is None:
        raise MalformedPhoto("the JPEG has no frame header (no dimensions)")
    # Inside scan data a 0xFF byte is always followed by 0x00 or a restart marker, so the
    # first FF D9 after the first scan is the end of the image; a cut-off file has none.
    tail = b""
    while block := f.read(1 << 16):
        if b"\xff\xd9" in tail[-1:] + block:
            return size
        tail = block
    raise MalformedPhoto("the JPEG is cut off (no end-of-image marker)")


def _next_marker(f: BinaryIO) -> int:
    if _read(f, 1, "JPEG") != b"\xff":
        raise MalformedPhoto("the JPEG's segments are corrupt")
    marker = b"\xff"
    while marker == b"\xff":  # fill bytes may precede a marker
        marker = _read(f, 1, "JPEG")
    return marker[0]


def _png_dimensions(f: BinaryIO) -> tuple[int, int]:
    """Read IHDR, then walk the chunks (without reading their data) to IEND."""
    f.seek(8)  # past the signature
    header = _read(f, 8 + 13, "PNG")
    length, kind, width, height = struct.unpack(">I4sII", header[:16])
    if kind != b"IHDR" or length != 13:
        raise MalformedPhoto("the PNG does not start with its header chunk")
    end = f.seek(0, os.SEEK_END)
    f.seek(8 + 8 + 13 + 4)  # past IHDR and its CRC
    while True:
        length, kind = struct.unpack(">I4s", _read(f, 8, "PNG"))
        if f.tell() + length + 4 > end:
            raise MalformedPhoto("the PNG is cut off (a chunk runs past the end of the file)")
        if kind == b"IEND":
            return width, height
        f.seek(length + 4, os.SEEK_CUR)


def _read(f: BinaryIO, n: int, kind: str) -> bytes:
    data = f.read(n)
    if len(data) < n:
        raise MalformedPhoto(f"the {kind} is cut off")
    return data
