"""NTAG 424 tag keys at rest: AES-256-GCM with a key from settings, bound to the tag UID."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .settings import Settings

_NONCE = 12


def master_key(settings: Settings) -> bytes:
    raw = settings.tag_key_secret.get_secret_value().strip()
    if not raw:
        # Embedded default only: derived from the local signing key.
        seed = settings.jwt_signing_key.get_secret_value().encode()
        return hashlib.sha256(b"gridgov-inspection-tag-keys|" + seed).digest()
    for decode in (bytes.fromhex, base64.b64decode):
        try:
            key = decode(raw)
        except (ValueError, binascii.Error):
            continue
        if len(key) == 32:
            return key
    raise ValueError("GRIDGOV_TAG_KEY_SECRET must be 32 bytes, hex or base64")


def parse_tag_key(hex_key: str) -> bytes:
    try:
        key = bytes.fromhex(hex_key)
    except ValueError as exc:
        raise ValueError("tag key must be 32 hex characters (AES-128)") from exc
    if len(key) != 16:
        raise ValueError("tag key must be 32 hex characters (AES-128)")
    return key


def seal(settings: Settings, tag_uid: str, key: bytes) -> bytes:
    nonce = os.urandom(_NONCE)
    return nonce + AESGCM(master_key(settings)).encrypt(nonce, key, tag_uid.upper().encode())


def unseal(settings: Settings, tag_uid: str, blob: bytes) -> bytes:
    try:
        return AESGCM(master_key(settings)).decrypt(
            blob[:_NONCE], blob[_NONCE:], tag_uid.upper().encode()
        )
    except InvalidTag as exc:
        raise ValueError("stored tag key cannot be decrypted with the configured key") from exc
