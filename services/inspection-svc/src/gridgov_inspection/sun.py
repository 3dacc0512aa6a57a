"""Verification of NTAG 424 DNA "Secure Unique NFC" (SUN) messages.

Implements the SDMMAC check of NXP AN12196 for plain (unencrypted) UID and
SDMReadCtr mirroring, e.g. ``?uid=041E3C8A2D6B80&ctr=000006&cmac=4B00064004B0B3D3``:

    SV2                = 3CC3 0001 0080 || UID (7 B) || SDMReadCtr (3 B, LSB first)
    KSesSDMFileReadMAC = AES-CMAC(SDMFileReadKey, SV2)
    SDMMAC             = MACt(KSesSDMFileReadMAC, MAC input)

MACt keeps the odd-indexed bytes (1, 3, ..., 15) of the 16-byte CMAC. The MAC input is
empty when SDMMACInputOffset == SDMMACOffset (the usual setup); otherwise it is the raw
NDEF bytes between the two offsets - i.e. the ASCII text of the URL, not decoded hex.
"""

from __future__ import annotations

import hmac
import re

from cryptography.hazmat.primitives.ciphers.algorithms import AES
from cryptography.hazmat.primitives.cmac import CMAC

__all__ = ["SunError", "SunReplayError", "check_counter", "sdm_mac", "verify_sun"]

# Session vector label for the SDM file-read MAC key (SV1 for the ENC key is C33C...).
_SV2_PREFIX = bytes.fromhex("3CC300010080")
_UID_LEN = 7
_CTR_LEN = 3
_MAC_LEN = 8
_MAX_COUNTER = 0xFFFFFF


class SunError(ValueError):
    """The SUN message is malformed or its MAC does not verify."""


class SunReplayError(SunError):
    """The read counter did not advance: the URL was seen before (copied or replayed)."""


def _parse_hex(value: str, n_bytes: int, what: str) -> bytes:
    # Strict: bytes.fromhex() would also accept spaces, which a URL parameter never needs.
    if not isinstance(value, str) or not re.fullmatch(f"[0-9A-Fa-f]{{{2 * n_bytes}}}", value):
        raise SunError(f"malformed {what}: expected {2 * n_bytes} hex characters")
    return bytes.fromhex(value)


def _cmac(key: bytes, data: bytes) -> bytes:
    c = CMAC(AES(key))
    c.update(data)
    return c.finalize()


def sdm_mac(key: bytes, uid: bytes, counter: int, mac_input: bytes = b"") -> bytes:
    """Return the 8-byte truncated SDMMAC a tag with ``key`` would mirror."""
    if not isinstance(key, bytes | bytearray) or len(key) != 16:
        raise SunError("malformed key: expected 16 bytes (AES-128)")
    if len(uid) != _UID_LEN:
        raise SunError(f"malformed UID: expected {_UID_LEN} bytes")
    if not 0 <= counter <= _MAX_COUNTER:
        raise SunError("malformed counter: expected 0..16777215")
    # The URL shows the counter MSB first, but SV2 carries it LSB first (AN12196).
    sv2 = _SV2_PREFIX + bytes(uid) + counter.to_bytes(_CTR_LEN, "little")
    session_key = _cmac(bytes(key), sv2)
    return _cmac(session_key, bytes(mac_input))[1::2]


def verify_sun(
    key: bytes, uid_hex: str, counter_hex: str, cmac_hex: str, mac_input: bytes = b""
) -> int:
    """Verify a plain-mirrored SUN message and return its read counter.

    ``counter_hex`` is the 6 hex characters exactly as mirrored (MSB first, "000006" = 6).
    Raises ``SunError`` if anything is malformed or the MAC does not match. Replay
    protection is separate: pass the result to ``check_counter``.
    """
    uid = _parse_hex(uid_hex, _UID_LEN, "UID")
    counter = int.from_bytes(_parse_hex(counter_hex, _CTR_LEN, "counter"), "big")
    received = _parse_hex(cmac_hex, _MAC_LEN, "CMAC")
    expected = sdm_mac(key, uid, counter, mac_input)
    # Constant time so response timing does not leak how many MAC bytes matched.
    if not hmac.compare_digest(expected, received):
        raise SunError("CMAC does not match")
    return counter


def check_counter(counter: int, last_seen: int | None) -> None:
    """Reject a counter that did not strictly increase since the last accepted scan."""
    if last_seen is not None and counter <= last_seen:
        raise SunReplayError(
            f"SUN counter {counter} is not newer than last accepted {last_seen}: "
            "replayed or copied tag URL"
        )
