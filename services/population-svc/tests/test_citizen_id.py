from datetime import date

import pytest

from gridgov_population.citizen_id import (
    CitizenIdError,
    age_on,
    check_declared,
    parse_citizen_id,
)

TODAY = date(2025, 6, 1)
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def make_id(first17: str) -> str:
    """Independent implementation of the GB 11643 check character, for generating fixtures."""
    total = sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=True))
    return first17 + "10X98765432"[total % 11]


def test_well_known_sample() -> None:
    cid = parse_citizen_id("11010519491231002X", today=TODAY)
    assert cid.number == "11010519491231002X"
    assert cid.region_code == "110105"
    assert cid.birth_date == date(1949, 12, 31)
    assert cid.sex == "female"  # 17th digit 2 is even
    assert cid.upgraded_from_15 is False


def test_lowercase_x_and_whitespace_accepted() -> None:
    assert parse_citizen_id(" 11010519491231002x ", today=TODAY).number == "11010519491231002X"


@pytest.mark.parametrize(
    ("first17", "birth", "sex"),
    [
        ("44030619900101123", date(1990, 1, 1), "male"),
        ("51010720000229004", date(2000, 2, 29), "female"),
        ("65010219000101001", date(1900, 1, 1), "male"),
    ],
)
def test_generated_valid_ids(first17: str, birth: date, sex: str) -> None:
    cid = parse_citizen_id(make_id(first17), today=TODAY)
    assert cid.birth_date == birth
    assert cid.sex == sex
    assert cid.region_code == first17[:6]


def test_wrong_check_character() -> None:
    with pytest.raises(CitizenIdError, match=r"check character should be 'X', got '3'"):
        parse_citizen_id("110105194912310023", today=TODAY)


def test_error_message_does_not_leak_number() -> None:
    with pytest.raises(CitizenIdError) as exc:
        parse_citizen_id("110105194912310023", today=TODAY)
    assert "11010519491231" not in str(exc.value)


def test_impossible_birth_date() -> None:
    with pytest.raises(CitizenIdError, match="birth date 19990230 is not a real date"):
        parse_citizen_id(make_id("11010519990230001"), today=TODAY)


def test_future_birth_date() -> None:
    with pytest.raises(CitizenIdError, match="birth date 20250602 is in the future"):
        parse_citizen_id(make_id("11010520250602001"), today=TODAY)
    # Born today is fine.
    assert parse_citizen_id(make_id("11010520250601001"), today=TODAY).birth_date == TODAY


def test_birth_date_before_1900() -> None:
    with pytest.raises(CitizenIdError, match="before 1900-01-01"):
        parse_citizen_id(make_id("11010518991231001"), today=TODAY)


@pytest.mark.parametrize(
    "value",
    ["", "1101051949123100", "1101051949123100201", "11010519491231002Y", "1101051949X231002X"],
)
def test_malformed(value: str) -> None:
    with pytest.raises(CitizenIdError):
        parse_citizen_id(value, today=TODAY)


def test_non_ascii_digits_rejected_fullwidth_accepted() -> None:
    arabic_indic = "١١٠١٠٥١٩٤٩١٢٣١٠٠٢X"  # str.isdigit() is True for these
    with pytest.raises(CitizenIdError):
        parse_citizen_id(arabic_indic, today=TODAY)
    fullwidth = "１１０１０５１９４９１２３１００２Ｘ"
    assert parse_citizen_id(fullwidth, today=TODAY).number == "11010519491231002X"


def test_15_digit_upgrade() -> None:
    cid = parse_citizen_id("110105491231002", today=TODAY)
    assert cid.number == "11010519491231002X"
    assert cid.upgraded_from_15 is True
    assert cid.birth_date == date(1949, 12, 31)
    assert cid.sex == "female"


def test_15_digit_invalid_date() -> None:
    with pytest.raises(CitizenIdError, match="birth date 19991301 is not a real date"):
        parse_citizen_id("110105991301001", today=TODAY)


def test_check_declared() -> None:
    cid = parse_citizen_id("11010519491231002X", today=TODAY)
    check_declared(cid, birth_date=date(1949, 12, 31), sex="female")
    check_declared(cid)
    with pytest.raises(CitizenIdError, match="declared sex 'male' does not match"):
        check_declared(cid, sex="male")
    with pytest.raises(CitizenIdError, match="declared birth date 1949-12-30 does not match"):
        check_declared(cid, birth_date=date(1949, 12, 30))


def test_repr_masks_number() -> None:
    cid = parse_citizen_id("11010519491231002X", today=TODAY)
    assert "11010519491231002X" not in repr(cid)
    assert "1101**********002X" in repr(cid)


def test_age_on() -> None:
    born = date(1990, 6, 15)
    assert age_on(born, date(2025, 6, 14)) == 34
    assert age_on(born, date(2025, 6, 15)) == 35
    leap = date(2000, 2, 29)
    assert age_on(leap, date(2001, 2, 28)) == 0
    assert age_on(leap, date(2001, 3, 1)) == 1
    with pytest.raises(ValueError):
        age_on(born, date(1990, 6, 14))
