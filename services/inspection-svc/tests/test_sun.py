import pytest

from gridgov_inspection.sun import (
    SunError,
    SunReplayError,
    check_counter,
    sdm_mac,
    verify_sun,
)

ZERO_KEY = bytes(16)
UID = "041E3C8A2D6B80"
CTR = "000006"
CMAC = "4B00064004B0B3D3"


def test_known_good_plain_vector() -> None:
    assert verify_sun(ZERO_KEY, UID, CTR, CMAC) == 6


def test_lowercase_hex_accepted() -> None:
    assert verify_sun(ZERO_KEY, UID.lower(), CTR, CMAC.lower()) == 6


def test_an12196_table4_vector_empty_mac_input() -> None:
    # AN12196 SUN example: decrypted PICCData gives UID 04DE5F1EACC040, SDMReadCtr 3D0000
    # (LSB first) = 61; SV2 = 3CC30001008004DE5F1EACC0403D0000.
    assert verify_sun(ZERO_KEY, "04DE5F1EACC040", "00003D", "94EED9EE65337086") == 61


def test_an12196_table5_vector_with_mac_input() -> None:
    # MAC over the ASCII bytes from SDMMACInputOffset up to SDMMACOffset (enc data + "&cmac=").
    mac_input = b"CEE9A53E3E463EF1F459635736738962&cmac="
    assert verify_sun(ZERO_KEY, "04958CAA5C5E80", "000008", "ECC1E7F6C6C73BF6", mac_input) == 8
    with pytest.raises(SunError, match="CMAC does not match"):
        verify_sun(ZERO_KEY, "04958CAA5C5E80", "000008", "ECC1E7F6C6C73BF6")


def test_sdm_mac_matches_vector() -> None:
    assert sdm_mac(ZERO_KEY, bytes.fromhex(UID), 6).hex().upper() == CMAC


@pytest.mark.parametrize("i", range(8))
def test_flipped_cmac_byte_fails(i: int) -> None:
    mac = bytearray.fromhex(CMAC)
    mac[i] ^= 0x01
    with pytest.raises(SunError, match="CMAC does not match"):
        verify_sun(ZERO_KEY, UID, CTR, mac.hex())


def test_wrong_counter_fails() -> None:
    with pytest.raises(SunError, match="CMAC does not match"):
        verify_sun(ZERO_KEY, UID, "000007", CMAC)


def test_big_endian_counter_in_sv2_would_not_match() -> None:
    # "060000" is the same bytes as "000006" read the wrong way round; must not verify.
    with pytest.raises(SunError, match="CMAC does not match"):
        verify_sun(ZERO_KEY, UID, "060000", CMAC)


def test_wrong_uid_fails() -> None:
    with pytest.raises(SunError, match="CMAC does not match"):
        verify_sun(ZERO_KEY, "041E3C8A2D6B81", CTR, CMAC)


def test_wrong_key_fails() -> None:
    with pytest.raises(SunError, match="CMAC does not match"):
        verify_sun(b"\x01" * 16, UID, CTR, CMAC)


@pytest.mark.parametrize(
    ("uid", "ctr", "cmac", "reason"),
    [
        ("041E3C8A2D6B8", CTR, CMAC, "malformed UID: expected 14 hex characters"),
        ("041E3C8A2D6B8G", CTR, CMAC, "malformed UID: expected 14 hex characters"),
        ("041E3C8A2D6B8000", CTR, CMAC, "malformed UID: expected 14 hex characters"),
        ("041E 3C8A2D6B8", CTR, CMAC, "malformed UID: expected 14 hex characters"),
        (UID, "00006", CMAC, "malformed counter: expected 6 hex characters"),
        (UID, "0x0006", CMAC, "malformed counter: expected 6 hex characters"),
        (UID, CTR, "4B00064004B0B3D", "malformed CMAC: expected 16 hex characters"),
        (UID, CTR, "4B00064004B0B3D3\n", "malformed CMAC: expected 16 hex characters"),
        (UID, CTR, "", "malformed CMAC: expected 16 hex characters"),
    ],
)
def test_malformed_hex_fails(uid: str, ctr: str, cmac: str, reason: str) -> None:
    with pytest.raises(SunError) as exc:
        verify_sun(ZERO_KEY, uid, ctr, cmac)
    assert str(exc.value) == reason


def test_bad_key_length() -> None:
    with pytest.raises(SunError, match="malformed key"):
        verify_sun(bytes(15), UID, CTR, CMAC)


def test_sun_error_is_value_error() -> None:
    assert issubclass(SunError, ValueError)
    assert issubclass(SunReplayError, SunError)


def test_check_counter() -> None:
    check_counter(6, None)
    check_counter(6, 5)
    with pytest.raises(SunReplayError):
        check_counter(6, 6)
    with pytest.raises(SunReplayError, match="not newer than last accepted 9"):
        check_counter(6, 9)
