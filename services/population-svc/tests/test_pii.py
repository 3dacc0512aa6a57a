import base64
import os

import pytest

from gridgov_population.pii import (
    BlindIndex,
    FieldCipher,
    PiiDecryptError,
    PiiError,
    mask_citizen_id,
    mask_phone,
)

K1 = bytes(range(32))
K2 = bytes(range(32, 64))


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


@pytest.fixture
def cipher() -> FieldCipher:
    return FieldCipher({"k1": K1, "k2": K2}, active_key_id="k2")


def test_round_trip(cipher: FieldCipher) -> None:
    token = cipher.encrypt("13812345678", "person.phone")
    assert token.startswith("v1.k2.")
    assert "13812345678" not in token
    assert cipher.decrypt(token, "person.phone") == "13812345678"


def test_round_trip_unicode_and_empty(cipher: FieldCipher) -> None:
    for text in ["广东省深圳市南山区", ""]:
        assert cipher.decrypt(cipher.encrypt(text, "person.address"), "person.address") == text


def test_encryption_is_randomised(cipher: FieldCipher) -> None:
    assert cipher.encrypt("x", "person.phone") != cipher.encrypt("x", "person.phone")


def test_tamper_detected(cipher: FieldCipher) -> None:
    token = cipher.encrypt("13812345678", "person.phone")
    prefix, data = token.rsplit(".", 1)
    raw = bytearray(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
    raw[-1] ^= 0x01
    forged = prefix + "." + base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(PiiDecryptError):
        cipher.decrypt(forged, "person.phone")


def test_key_id_swap_detected(cipher: FieldCipher) -> None:
    token = cipher.encrypt("secret", "person.phone")
    with pytest.raises(PiiDecryptError):
        cipher.decrypt(token.replace("v1.k2.", "v1.k1.", 1), "person.phone")


def test_aad_mismatch_fails(cipher: FieldCipher) -> None:
    token = cipher.encrypt("13812345678", "person.phone")
    with pytest.raises(PiiDecryptError):
        cipher.decrypt(token, "person.emergency_phone")


def test_empty_associated_rejected(cipher: FieldCipher) -> None:
    with pytest.raises(PiiError):
        cipher.encrypt("x", "")


@pytest.mark.parametrize("token", ["", "v1.k2", "v2.k2.AAAA", "v1.k2.!!!!", "v1.k2.AAAA"])
def test_malformed_tokens(cipher: FieldCipher, token: str) -> None:
    with pytest.raises(PiiError):
        cipher.decrypt(token, "person.phone")


def test_unknown_key_id(cipher: FieldCipher) -> None:
    token = FieldCipher({"k9": os.urandom(32)}, "k9").encrypt("x", "person.phone")
    with pytest.raises(PiiError, match="unknown key id 'k9'"):
        cipher.decrypt(token, "person.phone")


def test_rotation() -> None:
    old = FieldCipher({"k1": K1}, "k1")
    token = old.encrypt("11010519491231002X", "person.citizen_id")

    new = FieldCipher({"k1": K1, "k2": K2}, "k2")
    assert new.needs_rotation(token) is True
    assert new.decrypt(token, "person.citizen_id") == "11010519491231002X"

    rotated = new.rotate(token, "person.citizen_id")
    assert rotated.startswith("v1.k2.")
    assert new.needs_rotation(rotated) is False
    assert new.rotate(rotated, "person.citizen_id") == rotated
    assert new.decrypt(rotated, "person.citizen_id") == "11010519491231002X"


def test_from_setting() -> None:
    cipher = FieldCipher.from_setting(f" k2:{b64(K2)} , k1:{b64(K1)} ", active="k2")
    assert cipher.key_ids == {"k1", "k2"}
    assert cipher.active_key_id == "k2"
    legacy = FieldCipher({"k1": K1}, "k1").encrypt("x", "a.b")
    assert cipher.decrypt(legacy, "a.b") == "x"
    urlsafe_unpadded = base64.urlsafe_b64encode(K1).rstrip(b"=").decode()
    assert FieldCipher.from_setting(f"k1:{urlsafe_unpadded}", "k1").key_ids == {"k1"}
    generated = FieldCipher.generate_key()
    assert FieldCipher.from_setting(f"kx:{generated}", "kx").active_key_id == "kx"


@pytest.mark.parametrize(
    ("setting", "active", "message"),
    [
        ("", "k1", "empty"),
        ("k1", "k1", "must look like"),
        (f"k1:{b64(b'short')}", "k1", "must decode to 32 bytes, got 5"),
        ("k1:not base64!!", "k1", "not valid base64"),
        (f"k1:{b64(K1)},k1:{b64(K2)}", "k1", "duplicate key id 'k1'"),
        (f"k1:{b64(K1)}", "k2", "active key id 'k2'"),
        (f"k.1:{b64(K1)}", "k.1", "invalid key id"),
    ],
)
def test_from_setting_errors(setting: str, active: str, message: str) -> None:
    with pytest.raises(PiiError, match=message):
        FieldCipher.from_setting(setting, active=active)


def test_repr_hides_keys(cipher: FieldCipher) -> None:
    text = repr(cipher)
    assert "k1" in text
    assert b64(K1) not in text
    assert repr(BlindIndex(K1)) == "BlindIndex(key=<redacted>)"


def test_blind_index_stable_and_normalised() -> None:
    bi = BlindIndex(K1)
    a = bi.index("citizen_id", "11010519491231002X")
    assert a == bi.index("citizen_id", " 11010519491231002x ")
    assert a == BlindIndex(K1).index("citizen_id", "11010519491231002X")
    # Legacy 15-digit number indexes like its upgraded form.
    assert a == bi.index("citizen_id", "110105491231002")
    assert len(a) == 64
    assert int(a, 16) >= 0

    p = bi.index("phone", "13812345678")
    assert p == bi.index("phone", "138-1234-5678")
    assert p == bi.index("phone", "+86 138 1234 5678")
    assert p == bi.index("phone", "0086 13812345678")


def test_blind_index_key_and_field_dependent() -> None:
    value = "11010519491231002X"
    assert BlindIndex(K1).index("citizen_id", value) != BlindIndex(K2).index("citizen_id", value)
    bi = BlindIndex(K1)
    assert bi.index("citizen_id", "13812345678") != bi.index("phone", "13812345678")


def test_blind_index_rejects_bad_input() -> None:
    with pytest.raises(PiiError):
        BlindIndex(b"too short")
    with pytest.raises(PiiError):
        BlindIndex(K1).index("phone", "n/a")
    with pytest.raises(PiiError):
        BlindIndex(K1).index("Bad Field", "x")
    assert BlindIndex.from_setting(b64(K1)).index("phone", "1") == BlindIndex(K1).index(
        "phone", "1"
    )


def test_mask_citizen_id() -> None:
    assert mask_citizen_id("440306199001011234") == "4403**********1234"
    assert mask_citizen_id("440306900101123") == "4403*******1123"
    assert mask_citizen_id("12345") == "*****"
    assert mask_citizen_id("") == ""
    assert mask_citizen_id(None) == ""


def test_mask_phone() -> None:
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("01012345678") == "010****5678"
    assert mask_phone("12345678") == "****5678"
    assert mask_phone("110") == "***"
    assert mask_phone("") == ""
    assert mask_phone(None) == ""
