"""Protection of personal data at rest: field encryption, blind indexes and display masking.

Key handling rules (enforced here where possible):
* encryption keys and the blind-index key are different secrets, held outside the database;
* error messages and reprs never contain key material or plaintext.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gridgov_population.citizen_id import upgrade_15_to_18

__all__ = [
    "BlindIndex",
    "FieldCipher",
    "PiiDecryptError",
    "PiiError",
    "mask_citizen_id",
    "mask_phone",
]

_FORMAT_VERSION = "v1"
_KEY_BYTES = 32  # AES-256
_NONCE_BYTES = 12  # 96-bit random nonce, the GCM standard size
_TAG_BYTES = 16
# Key ids appear inside tokens and AAD, so keep them to a safe alphabet without "." or "|".
_KEY_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")


class PiiError(ValueError):
    """Bad key configuration, malformed token or bad input."""


class PiiDecryptError(PiiError):
    """Token failed authentication: tampered, wrong key or wrong associated data."""


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64_decode_any(text: str) -> bytes:
    """Strictly decode standard or URL-safe base64, padding optional."""
    text = text.strip().replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    return base64.b64decode(text, validate=True)


class FieldCipher:
    """AES-256-GCM encryption of individual fields, with key rotation.

    Token format: ``v1.<key_id>.<base64url(nonce || ciphertext || tag)>``. The key id in the
    token selects the decryption key, so retired keys keep decrypting until re-encrypted.

    ``associated`` is authenticated but not stored: it binds a token to its place (e.g.
    "person.phone", or better "person:<id>.phone") so a token copied into another field or
    record fails to decrypt instead of silently showing someone else's data.
    """

    def __init__(self, keys: Mapping[str, bytes], active_key_id: str) -> None:
        if not keys:
            raise PiiError("at least one encryption key is required")
        for key_id, key in keys.items():
            if not _KEY_ID_RE.fullmatch(key_id):
                raise PiiError(f"invalid key id {key_id!r}: use 1-32 chars of [A-Za-z0-9_-]")
            if not isinstance(key, bytes | bytearray) or len(key) != _KEY_BYTES:
                raise PiiError(f"key {key_id!r} must be exactly {_KEY_BYTES} bytes")
        if active_key_id not in keys:
            raise PiiError(f"active key id {active_key_id!r} is not among the configured keys")
        self._aeads = {key_id: AESGCM(bytes(key)) for key_id, key in keys.items()}
        self.active_key_id = active_key_id

    @classmethod
    def from_setting(cls, setting: str, active: str) -> FieldCipher:
        """Parse ``"k2:<base64 key>,k1:<base64 key>"`` (standard or URL-safe base64)."""
        keys: dict[str, bytes] = {}
        for n, item in enumerate(setting.split(","), start=1):
            item = item.strip()
            if not item:
                continue
            key_id, sep, encoded = item.partition(":")
            key_id = key_id.strip()
            if not sep or not key_id:
                raise PiiError(f"key entry #{n} must look like '<key_id>:<base64 key>'")
            if key_id in keys:
                raise PiiError(f"duplicate key id {key_id!r}")
            try:
                key = _b64_decode_any(encoded)
            except (binascii.Error, ValueError):
                raise PiiError(f"key {key_id!r} is not valid base64") from None
            if len(key) != _KEY_BYTES:
                raise PiiError(f"key {key_id!r} must decode to {_KEY_BYTES} bytes, got {len(key)}")
            keys[key_id] = key
        if not keys:
            raise PiiError("encryption key setting is empty")
        return cls(keys, active)

    @staticmethod
    def generate_key() -> str:
        """A fresh random key, base64-encoded for use in the key setting."""
        return base64.b64encode(os.urandom(_KEY_BYTES)).decode("ascii")

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._aeads)

    def __repr__(self) -> str:
        return f"FieldCipher(key_ids={sorted(self._aeads)!r}, active={self.active_key_id!r})"

    @staticmethod
    def _aad(key_id: str, associated: str) -> bytes:
        if not associated:
            raise PiiError("associated data must not be empty (bind tokens to their field)")
        # Version and key id are bound too; neither can contain "|" so this is unambiguous.
        return f"gridgov-pii|{_FORMAT_VERSION}|{key_id}|{associated}".encode()

    def encrypt(self, plaintext: str, associated: str) -> str:
        key_id = self.active_key_id
        aad = self._aad(key_id, associated)
        # Random 96-bit nonces are safe for well under 2**32 encryptions per key; rotating
        # keys periodically keeps us far below that.
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aeads[key_id].encrypt(nonce, plaintext.encode("utf-8"), aad)
        return f"{_FORMAT_VERSION}.{key_id}.{_b64url_encode(nonce + sealed)}"

    def decrypt(self, token: str, associated: str) -> str:
        key_id, blob = self._parse(token)
        aead = self._aeads.get(key_id)
        if aead is None:
            raise PiiError(f"token uses unknown key id {key_id!r}")
        try:
            plain = aead.decrypt(
                blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], self._aad(key_id, associated)
            )
        except InvalidTag:
            raise PiiDecryptError(
                "token failed authentication (tampered, wrong key or wrong associated data)"
            ) from None
        return plain.decode("utf-8")

    def needs_rotation(self, token: str) -> bool:
        """True if the token was encrypted under a key other than the active one."""
        key_id, _ = self._parse(token)
        return key_id != self.active_key_id

    def rotate(self, token: str, associated: str) -> str:
        """Re-encrypt under the active key if needed; otherwise return the token unchanged."""
        if not self.needs_rotation(token):
            return token
        return self.encrypt(self.decrypt(token, associated), associated)

    @staticmethod
    def _parse(token: str) -> tuple[str, bytes]:
        parts = token.split(".") if isinstance(token, str) else []
        if len(parts) != 3:
            raise PiiError("malformed token: expected 'v1.<key_id>.<data>'")
        version, key_id, data = parts
        if version != _FORMAT_VERSION:
            raise PiiError(f"unsupported token version {version!r}")
        if not _KEY_ID_RE.fullmatch(key_id):
            raise PiiError("malformed token: bad key id")
        if not re.fullmatch(r"[A-Za-z0-9_-]+", data):
            raise PiiError("malformed token: data is not base64url")
        try:
            blob = _b64_decode_any(data)
        except (binascii.Error, ValueError):
            raise PiiError("malformed token: data is not base64url") from None
        if len(blob) < _NONCE_BYTES + _TAG_BYTES:
            raise PiiError("malformed token: data too short")
        return key_id, blob


# --- blind index -------------------------------------------------------------------------

# Why a *keyed* HMAC and not sha256(id) or sha256(salt + id):
# the citizen ID space is tiny. Region codes (~3,500 in use) x birth dates (~36,500 per
# century) x 1,000 sequence numbers ≈ 1.3e11 candidates, and the check character adds no
# entropy; with a known birth place and date only 1,000 remain. Mobile numbers are ~1e10.
# A GPU tries ~1e10 SHA-256/s, so a leaked table of unkeyed hashes is reversed in minutes.
# A per-row random salt does not fix this (each row is still 1e11 work, often far less) and
# makes equality lookups impossible, which is the point of the index. A secret key held
# outside the database turns brute force into "steal the key first".
# Rotating this key means recomputing every index value, so it is a single key by design.

_BLIND_INDEX_VERSION = b"gridgov-blind-index/v1"
_FIELD_RE = re.compile(r"[a-z][a-z0-9_.]{0,63}")
_FULLWIDTH = str.maketrans("０１２３４５６７８９Ｘｘ", "0123456789Xx")


def _normalise_citizen_id(value: str) -> str:
    compact = "".join(value.translate(_FULLWIDTH).split()).upper()
    # Legacy 15-digit numbers index the same as their 18-character form, so old and new
    # records for one person collide as they should.
    if len(compact) == 15 and compact.isascii() and compact.isdigit():
        return upgrade_15_to_18(compact)
    return compact


def _normalise_phone(value: str) -> str:
    digits = "".join(ch for ch in value.translate(_FULLWIDTH) if "0" <= ch <= "9")
    # +86 / 0086 prefixes on mainland mobile numbers.
    if len(digits) == 13 and digits.startswith("861"):
        return digits[2:]
    if len(digits) == 15 and digits.startswith("00861"):
        return digits[4:]
    return digits


def _normalise_default(value: str) -> str:
    return " ".join(value.split())


_NORMALISERS = {
    "citizen_id": _normalise_citizen_id,
    "phone": _normalise_phone,
}


class BlindIndex:
    """Deterministic keyed digest of a normalised value, for equality lookups on encrypted data.

    Each field has its own domain separator, so the same string in two fields gives
    unrelated index values (an index cannot be used to correlate across columns).
    """

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes | bytearray) or len(key) < _KEY_BYTES:
            raise PiiError(f"blind index key must be at least {_KEY_BYTES} bytes")
        self._key = bytes(key)

    @classmethod
    def from_setting(cls, setting: str) -> BlindIndex:
        try:
            key = _b64_decode_any(setting)
        except (binascii.Error, ValueError):
            raise PiiError("blind index key is not valid base64") from None
        return cls(key)

    def __repr__(self) -> str:
        return "BlindIndex(key=<redacted>)"

    @staticmethod
    def normalise(field: str, value: str) -> str:
        return _NORMALISERS.get(field, _normalise_default)(value)

    def index(self, field: str, value: str) -> str:
        """Hex HMAC-SHA256 of the normalised value under a per-field domain separator."""
        if not _FIELD_RE.fullmatch(field):
            raise PiiError(f"invalid field name {field!r}")
        normalised = self.normalise(field, value)
        if not normalised:
            raise PiiError(f"nothing to index for field {field!r} after normalisation")
        # Unambiguous framing: the field name cannot contain NUL and the value comes last.
        message = b"\x00".join(
            (_BLIND_INDEX_VERSION, field.encode("ascii"), normalised.encode("utf-8"))
        )
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()


# --- masking -----------------------------------------------------------------------------


def mask_citizen_id(value: str | None) -> str:
    """'440306199001011234' -> '4403**********1234'. Short values are fully masked."""
    text = (value or "").strip()
    if len(text) < 12:  # too short to show 8 characters and still hide the birth date
        return "*" * len(text)
    return f"{text[:4]}{'*' * (len(text) - 8)}{text[-4:]}"


def mask_phone(value: str | None) -> str:
    """'13812345678' -> '138****5678'; shorter numbers keep at most the last 4 digits."""
    text = (value or "").strip()
    if len(text) >= 11:
        return f"{text[:3]}{'*' * (len(text) - 7)}{text[-4:]}"
    if len(text) >= 7:
        return f"{'*' * (len(text) - 4)}{text[-4:]}"
    return "*" * len(text)
