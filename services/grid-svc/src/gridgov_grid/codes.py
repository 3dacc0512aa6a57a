"""Region codes: district (6) -> street (9) -> community (12) -> grid (15 digits).

Each level below district appends one 3-digit segment to its parent's code:

* district  – GB/T 2260 county-level code, e.g. ``440306``
* street    – GB/T 10114 segment: 001–099 sub-district (街道), 100–199 town (镇),
  200–399 township (乡)
* community – 001–199 residents' committee (居委会), 200–399 village (村委会)
* grid      – 001–999, platform-assigned

Segment ``000`` is never valid (it means "the parent itself" in the national scheme).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class CodeError(ValueError):
    """A region code is malformed, at the wrong level, or cannot be allocated."""


class Level(StrEnum):
    DISTRICT = "district"
    STREET = "street"
    COMMUNITY = "community"
    GRID = "grid"


_LENGTH: dict[Level, int] = {
    Level.DISTRICT: 6,
    Level.STREET: 9,
    Level.COMMUNITY: 12,
    Level.GRID: 15,
}
_BY_LENGTH: dict[int, Level] = {n: lvl for lvl, n in _LENGTH.items()}
_PARENT_LEVEL: dict[Level, Level] = {
    Level.STREET: Level.DISTRICT,
    Level.COMMUNITY: Level.STREET,
    Level.GRID: Level.COMMUNITY,
}

# Allowed 3-digit segment ranges (inclusive) per level and optional kind.
# The `None` entry is the range used when no kind is given.
_RANGES: dict[Level, dict[str | None, tuple[int, int]]] = {
    Level.STREET: {
        None: (1, 399),
        "subdistrict": (1, 99),
        "town": (100, 199),
        "township": (200, 399),
    },
    Level.COMMUNITY: {
        None: (1, 399),
        "residents_committee": (1, 199),
        "village": (200, 399),
    },
    Level.GRID: {None: (1, 999)},
}


def level_of(code: str) -> Level:
    """Return the level of `code` from its length; raise CodeError if it is not a region code."""
    if not isinstance(code, str):
        raise CodeError(f"region code must be a string of digits, got {type(code).__name__}")
    # isascii() too: str.isdigit() also accepts e.g. full-width or Arabic-Indic digits.
    if not (code.isascii() and code.isdigit()):
        raise CodeError(f"region code {code!r} must contain only digits 0-9")
    level = _BY_LENGTH.get(len(code))
    if level is None:
        raise CodeError(
            f"region code {code} has {len(code)} digits; expected 6 (district), "
            "9 (street), 12 (community) or 15 (grid)"
        )
    return level


def parent_code(code: str) -> str | None:
    """Parent's code (drop the last segment); None for a district."""
    if level_of(code) is Level.DISTRICT:
        return None
    return code[:-3]


def _range_for(level: Level, kind: str | None) -> tuple[int, int]:
    ranges = _RANGES[level]
    if kind not in ranges:
        kinds = ", ".join(repr(k) for k in ranges if k is not None)
        if len(ranges) == 1:
            raise CodeError(f"{level} codes have no kind, got kind {kind!r}")
        raise CodeError(f"unknown {level} kind {kind!r}; expected one of {kinds}")
    return ranges[kind]


def _describe(level: Level, kind: str | None, lo: int, hi: int) -> str:
    label = f"{level} ({kind})" if kind else level
    return f"{label} segment must be {lo:03d}–{hi:03d}"


def _check_parent(parent: str | None, level: Level) -> str:
    expected = _PARENT_LEVEL[level]
    if parent is None:
        raise CodeError(f"a {level} code needs a parent {expected} code")
    actual = level_of(parent)
    if actual is not expected:
        raise CodeError(
            f"parent {parent} is a {actual} code; a {level} must sit under a {expected}"
        )
    return parent


def validate_child_code(
    parent_code: str | None, code: str, level: Level, kind: str | None = None
) -> None:
    """Check that `code` is a well-formed `level` code under `parent_code`.

    `kind` (street: subdistrict/town/township; community: residents_committee/village)
    narrows the allowed segment range. Raises CodeError with a human-readable message.
    """
    level = Level(level)
    actual = level_of(code)
    if actual is not level:
        raise CodeError(
            f"code {code} is a {actual} code ({len(code)} digits), "
            f"expected a {level} code ({_LENGTH[level]} digits)"
        )
    if level is Level.DISTRICT:
        if parent_code is not None:
            raise CodeError(f"district {code} cannot have a parent (got {parent_code})")
        if kind is not None:
            raise CodeError(f"district codes have no kind, got kind {kind!r}")
        if code == "000000":
            raise CodeError("district code 000000 is not a valid GB/T 2260 code")
        return

    parent = _check_parent(parent_code, level)
    if not code.startswith(parent):
        raise CodeError(f"code {code} does not extend parent {parent}")
    lo, hi = _range_for(level, kind)
    segment = int(code[-3:])
    if segment == 0:
        raise CodeError(f"code {code} ends in segment 000, which is never a valid {level}")
    if not lo <= segment <= hi:
        raise CodeError(f"code {code}: {_describe(level, kind, lo, hi)}, got {code[-3:]}")


def next_free_code(
    parent_code: str, level: Level, used: Iterable[str], kind: str | None = None
) -> str:
    """Lowest unused code under `parent_code` in the level's (or kind's) segment range.

    `used` must include retired codes: a code, once issued, is never handed out again
    (events, archives and external systems may still refer to it).
    """
    level = Level(level)
    if level is Level.DISTRICT:
        raise CodeError("district codes come from GB/T 2260 and are not allocated")
    parent = _check_parent(parent_code, level)
    lo, hi = _range_for(level, kind)
    taken = set(used)
    for segment in range(lo, hi + 1):
        candidate = f"{parent}{segment:03d}"
        if candidate not in taken:
            return candidate
    label = f"{level} ({kind})" if kind else level
    raise CodeError(
        f"no free {label} code left under {parent} (range {lo:03d}–{hi:03d} is used up)"
    )
