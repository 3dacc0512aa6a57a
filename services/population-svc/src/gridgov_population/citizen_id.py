"""Resident citizen ID numbers (公民身份号码) as defined by GB 11643-1999.

Layout of the 18-character number::

    RRRRRR YYYYMMDD SSS C
    region birth    seq check  (seq parity: odd = male, even = female)

Legacy 15-digit numbers (RRRRRR YYMMDD SSS) are upgraded by inserting "19" before the
year and appending the check character.

Error messages deliberately never echo the full number: they end up in logs and API
responses, and the number is sensitive personal data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Literal

__all__ = [
    "CitizenId",
    "CitizenIdError",
    "Sex",
    "age_on",
    "check_char",
    "check_declared",
    "parse_citizen_id",
    "upgrade_15_to_18",
]

Sex = Literal["male", "female"]

# ISO 7064 MOD 11-2, as tabulated in GB 11643-1999.
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"
_MIN_BIRTH_DATE = date(1900, 1, 1)
# China has a single time zone and no DST, so a fixed offset is exact.
_CHINA_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")

# Full-width digits/X are common from Chinese input methods; map them explicitly rather
# than using NFKC, which would also turn e.g. superscripts into digits.
_FULLWIDTH = str.maketrans("０１２３４５６７８９Ｘｘ", "0123456789Xx")
# Explicit [0-9]: `\d` would also accept other Unicode digits.
_RE_18 = re.compile(r"[0-9]{17}[0-9X]")
_RE_15 = re.compile(r"[0-9]{15}")


class CitizenIdError(ValueError):
    """The value is not a valid citizen ID number, or disagrees with declared facts."""


@dataclass(frozen=True, slots=True, repr=False)
class CitizenId:
    number: str  # 18 characters, check character uppercase
    region_code: str
    birth_date: date
    sex: Sex
    upgraded_from_15: bool = False

    def __repr__(self) -> str:
        # Keep the full number out of logs and tracebacks.
        masked = f"{self.number[:4]}{'*' * 10}{self.number[-4:]}"
        return (
            f"CitizenId(number={masked!r}, region_code={self.region_code!r}, "
            f"birth_date=<redacted>, sex=<redacted>, upgraded_from_15={self.upgraded_from_15})"
        )

    __str__ = __repr__


def check_char(first17: str) -> str:
    """Return the ISO 7064 MOD 11-2 check character for the first 17 digits."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise CitizenIdError("check character needs exactly 17 ASCII digits")
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def upgrade_15_to_18(number15: str) -> str:
    """Upgrade a legacy 15-digit number to 18 characters (no date validation)."""
    if not _RE_15.fullmatch(number15):
        raise CitizenIdError("a 15-character citizen ID must contain only digits")
    first17 = number15[:6] + "19" + number15[6:]
    return first17 + check_char(first17)


def _china_today() -> date:
    return datetime.now(_CHINA_TZ).date()


def parse_citizen_id(value: str, today: date | None = None) -> CitizenId:
    """Validate and decode a citizen ID number (18 characters, or legacy 15 digits).

    `today` defaults to the current date in China (UTC+8); pass it for deterministic tests.
    """
    if not isinstance(value, str):
        raise CitizenIdError("citizen ID must be a string")
    raw = value.strip().translate(_FULLWIDTH).upper()
    upgraded = False
    if len(raw) == 15:
        if not _RE_15.fullmatch(raw):
            raise CitizenIdError("a 15-character citizen ID must contain only digits")
        raw = upgrade_15_to_18(raw)
        upgraded = True
    elif len(raw) == 18:
        if not _RE_18.fullmatch(raw):
            raise CitizenIdError(
                "an 18-character citizen ID must be 17 digits followed by a digit or 'X'"
            )
        expected = check_char(raw[:17])
        if raw[17] != expected:
            raise CitizenIdError(f"check character should be {expected!r}, got {raw[17]!r}")
    else:
        raise CitizenIdError(f"citizen ID must have 18 characters (or legacy 15), got {len(raw)}")

    birth = _birth_date(raw[6:14], today or _china_today())
    sex: Sex = "male" if int(raw[16]) % 2 == 1 else "female"
    return CitizenId(
        number=raw,
        region_code=raw[:6],
        birth_date=birth,
        sex=sex,
        upgraded_from_15=upgraded,
    )


def _birth_date(yyyymmdd: str, today: date) -> date:
    try:
        birth = date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    except ValueError:
        raise CitizenIdError(f"birth date {yyyymmdd} is not a real date") from None
    if birth < _MIN_BIRTH_DATE:
        raise CitizenIdError(f"birth date {yyyymmdd} is before 1900-01-01")
    if birth > today:
        raise CitizenIdError(f"birth date {yyyymmdd} is in the future (today is {today:%Y%m%d})")
    return birth


def check_declared(cid: CitizenId, birth_date: date | None = None, sex: Sex | None = None) -> None:
    """Raise CitizenIdError if separately entered birth date / sex disagree with the number."""
    if birth_date is not None and birth_date != cid.birth_date:
        raise CitizenIdError(
            f"declared birth date {birth_date.isoformat()} does not match the citizen ID "
            f"({cid.birth_date.isoformat()})"
        )
    if sex is not None:
        if sex not in ("male", "female"):
            raise CitizenIdError(f"declared sex must be 'male' or 'female', got {sex!r}")
        if sex != cid.sex:
            raise CitizenIdError(
                f"declared sex {sex!r} does not match the citizen ID ({cid.sex!r})"
            )


def age_on(birth_date: date, day: date) -> int:
    """Completed years of age on `day`.

    Someone born on 29 February turns a year older on 1 March in non-leap years.
    """
    if day < birth_date:
        raise ValueError("day is before the birth date")
    before_birthday = (day.month, day.day) < (birth_date.month, birth_date.day)
    return day.year - birth_date.year - int(before_birthday)
