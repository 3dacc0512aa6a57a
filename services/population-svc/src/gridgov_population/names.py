"""Chinese name matching for duplicate detection of person records.

Why not a generic fuzzy string matcher (Levenshtein, Jaro-Winkler, difflib ratio)?
Chinese personal names are 2-3 characters, so a single differing character is a 33-50%
edit distance: any threshold loose enough to accept the typo 张伟/张玮 also accepts the
different person 张三. Worse, edit distance compares code points, which carry no sound:
most data-entry errors come from pinyin input methods and are homophone substitutions
(伟/玮/炜 are all "wei"), which look maximally different to a string metric. So we compare
*pronunciation*: equal toneless pinyin + equal birth date is a candidate duplicate, different
pinyin is not.

pypinyin (0.55) has no surname mode (python-pinyin issues #120/#297), so surname readings
come from the table below and the given name is converted separately, which also stops
phrase lookups from spanning the surname/given-name boundary.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import date

from pypinyin import Style, lazy_pinyin, pinyin

__all__ = [
    "PersonFacts",
    "match_reasons",
    "name_pinyin",
    "normalise_name",
    "pinyin_match_keys",
    "split_surname",
]

# Compound surnames whose reading differs from the characters' everyday readings.
# Checked before single surnames. (单于 is omitted: 单 + given name 于… is far more common.)
COMPOUND_SURNAMES: dict[str, tuple[str, ...]] = {
    "尉迟": ("yu", "chi"),
    "万俟": ("mo", "qi"),
    "萬俟": ("mo", "qi"),
    "长孙": ("zhang", "sun"),
    "長孫": ("zhang", "sun"),
    "澹台": ("tan", "tai"),
}

# Heteronymous characters that have a fixed reading when used as a surname
# (simplified and, where the surname uses it, traditional forms).
SURNAME_READINGS: dict[str, str] = {
    "曾": "zeng",
    "单": "shan",
    "單": "shan",
    "解": "xie",
    "区": "ou",
    "區": "ou",
    "仇": "qiu",
    "朴": "piao",
    "查": "zha",
    "覃": "qin",
    "缪": "miao",
    "繆": "miao",
    "翟": "zhai",
    "乐": "yue",
    "樂": "yue",
    "盖": "ge",
    "蓋": "ge",
    "种": "chong",
    "種": "chong",
    "重": "chong",
    "么": "yao",
    "秘": "bi",
    "员": "yun",
    "員": "yun",
    "贠": "yun",
    "繁": "po",
    "洗": "xian",
    "折": "she",
    "佴": "nai",
    "粘": "nian",
    "藏": "zang",
    "都": "du",
    "六": "lu",
    "薄": "bo",
    "乜": "nie",
    "阚": "kan",
    "卜": "bu",
    "句": "gou",
    "隗": "wei",
    "蕃": "pi",
    "长": "chang",
}

# Separators in transliterated (e.g. Uyghur) names; such names have no Han surname.
_NAME_SEPARATORS = "·•・‧"
_MAX_ALTERNATIVES_PER_CHAR = 2
_MAX_MATCH_KEYS = 8


def normalise_name(name: str) -> str:
    """NFKC (folds compatibility ideographs and full-width letters) and drop whitespace."""
    return "".join(unicodedata.normalize("NFKC", name).split())


def _is_han(char: str) -> bool:
    return unicodedata.name(char, "").startswith(("CJK UNIFIED", "CJK COMPATIBILITY IDEO"))


def split_surname(name: str) -> tuple[str, str]:
    """Split a normalised name into (surname, given name). Heuristic: compound first."""
    if not name or not _is_han(name[0]) or any(sep in name for sep in _NAME_SEPARATORS):
        return "", name
    if len(name) > 2 and name[:2] in COMPOUND_SURNAMES:
        return name[:2], name[2:]
    if len(name) >= 2:
        return name[:1], name[1:]
    return "", name  # a lone character: cannot tell surname from given name


def _surname_syllables(surname: str) -> list[str]:
    if surname in COMPOUND_SURNAMES:
        return list(COMPOUND_SURNAMES[surname])
    if surname in SURNAME_READINGS:
        return [SURNAME_READINGS[surname]]
    return _plain_syllables(surname)


def _plain_syllables(text: str) -> list[str]:
    if not text:
        return []
    # Style.NORMAL is toneless; ü is written "v" (lv, nv) to keep keys ASCII.
    # Non-Han runs (latin letters, separators) come back as-is and are lowercased;
    # separators are dropped.
    out = []
    for syllable in lazy_pinyin(text, style=Style.NORMAL):
        cleaned = syllable.strip(_NAME_SEPARATORS).lower()
        if cleaned:
            out.append(cleaned)
    return out


def _parts(name: str) -> tuple[list[str], list[str], str]:
    """(surname syllables, given-name syllables, given-name text)."""
    surname, given = split_surname(normalise_name(name))
    return _surname_syllables(surname), _plain_syllables(given), given


def name_pinyin(name: str) -> str:
    """Toneless lowercase pinyin with surname readings, e.g. 曾伟 -> "zeng wei"."""
    head, tail, _ = _parts(name)
    return " ".join(head + tail)


def pinyin_match_keys(name: str) -> set[str]:
    """Blocking keys: the primary reading plus variants with one given-name heteronym swapped.

    Tolerates a clerk's input method picking the wrong reading of one character (李行 "xing"
    entered for 李航 "hang"). Bounded: at most 2 alternatives per character and 8 keys.
    """
    head, tail, given = _parts(name)
    if not head and not tail:
        return set()
    keys = [" ".join(head + tail)]
    # Only when given-name characters line up 1:1 with syllables (a pure Han given name).
    if len(given) == len(tail):
        for i, char in enumerate(given):
            if not _is_han(char):
                continue
            readings = pinyin(char, style=Style.NORMAL, heteronym=True)[0]
            alternatives = [r for r in dict.fromkeys(readings) if r != tail[i]]
            for alt in alternatives[:_MAX_ALTERNATIVES_PER_CHAR]:
                keys.append(" ".join([*head, *tail[:i], alt, *tail[i + 1 :]]))
    return set(keys[:_MAX_MATCH_KEYS])


@dataclass(frozen=True, slots=True)
class PersonFacts:
    """The facts duplicate detection looks at. Keep raw PII out: id_index is a blind index."""

    id_index: str | None
    name: str
    birth_date: date | None
    household_region_code: str | None  # 户籍地 administrative division code


def match_reasons(a: PersonFacts, b: PersonFacts) -> list[str]:
    """Why two records may be the same person (empty list: no reason).

    Reasons are evidence for a human reviewer, not an automatic merge: a common name such
    as 张伟 shares a birth date with several real people.
    """
    reasons: list[str] = []
    if a.id_index and b.id_index and a.id_index == b.id_index:
        reasons.append("same_citizen_id")
    if a.birth_date is None or a.birth_date != b.birth_date:
        return reasons
    name_a, name_b = normalise_name(a.name), normalise_name(b.name)
    if not name_a or not name_b:
        return reasons
    if (
        a.household_region_code
        and a.household_region_code == b.household_region_code
        and name_a == name_b
    ):
        reasons.append("same_household_place_name_birth_date")
    # Equal pinyin covers identical names and homophone typos alike (张伟/张玮, 王小明/汪晓鸣):
    # for 2-3 character names, exact-hanzi-only matching would miss most real duplicates.
    if name_pinyin(name_a) == name_pinyin(name_b):
        reasons.append("same_name_pinyin_birth_date")
    return reasons
