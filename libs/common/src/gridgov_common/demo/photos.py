"""Small valid PNG photos for the demo city, the dashboard's screenshots and its tests, and
JPEG-structured files for tests and load that need many distinct photos cheaply.

inspection-svc refuses a photo it has seen before, so every picture carries a unique comment
(a PNG) or unique scan data (a JPEG).
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


def jpeg_around(scan: bytes, size: tuple[int, int] = (640, 480)) -> bytes:
    """A whole JPEG file's structure (SOI, JFIF, frame header, scan, EOI) around ``scan``.

    It has what inspection-svc checks (type, dimensions, an end-of-image marker), not a
    picture a viewer can decode. 0xFF bytes in ``scan`` become 0xFE, since inside scan data
    0xFF starts a marker.
    """
    width, height = size
    frame = struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return (
        b"\xff\xd8"
        + b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
        + b"\xff\xc0"
        + struct.pack(">H", 2 + len(frame))
        + frame
        + b"\xff\xda\x00\x0c\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00"
        + scan.replace(b"\xff", b"\xfe")
        + b"\xff\xd9"
    )


def unique_jpeg(size: int = 2000) -> bytes:
    """A JPEG-structured file with ``size`` bytes of random scan data (unique per call)."""
    return jpeg_around(os.urandom(size))
