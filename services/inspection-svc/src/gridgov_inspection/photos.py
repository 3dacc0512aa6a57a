"""Photo intake: magic-byte type detection and content-addressed storage."""

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
    "PhotoBackend",
    "PhotoStorageFull",
    "PhotoStore",
    "PhotoTooLarge",
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


class PhotoTooLarge(ValueError):
    """The upload exceeded the byte limit."""


class UnsupportedPhotoType(ValueError):
    """The upload is not a JPEG, PNG or HEIC image (judged by content, not name)."""


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
    async def put_stream(self, chunks: AsyncIterator[bytes], max_bytes: int) -> StoredPhoto: ...

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

    async def put_stream(self, chunks: AsyncIterator[bytes], max_bytes: int) -> StoredPhoto:
        """Stream an upload to disk while hashing; store it under its SHA-256.

        Raises PhotoTooLarge as soon as ``max_bytes`` is exceeded, UnsupportedPhotoType
        once the head is read and is not an image, PhotoStorageFull on ENOSPC. The temp
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
                if not final.exists():
                    await asyncio.to_thread(_fsync_and_rename, f.fileno(), tmp, final)
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
