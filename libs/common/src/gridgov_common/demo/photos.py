"""Small valid PNG photos for the demo city, the dashboard's screenshots and its tests.

inspection-svc refuses a photo it has seen before, so every picture carries a unique comment.
"""

from __future__ import annotations

import os
import struct
import zlib


def encode_png(width: int, height: int, rows: bytes, comment: bytes) -> bytes:
    """An 8-bit RGB PNG from ``rows`` (each a filter byte then ``width`` RGB pixels)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"tEXt", b"Comment\x00" + comment)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def gradient_photo(rgb: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    """A shaded picture in one colour, unique per call."""
    width, height = size
    rows = b"".join(
        b"\x00"
        + bytes(min(255, c * (x + y) // (width + height) + 40) for x in range(width) for c in rgb)
        for y in range(height)
    )
    return encode_png(width, height, rows, os.urandom(8).hex().encode())
