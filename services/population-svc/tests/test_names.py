from datetime import date

import pytest

from gridgov_population.names import (
    PersonFacts,
    match_reasons,
    name_pinyin,
    pinyin_match_keys,
    split_surname,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("曾国藩", "zeng guo fan"),
        ("曾经", "zeng jing"),  # as a name, 曾 is the surname even where a phrase says "ceng"
        ("单雄信", "shan xiong xin"),
        ("解缙", "xie jin"),
        ("区志明", "ou zhi ming"),
        ("仇英", "qiu ying"),
        ("朴槿惠", "piao jin hui"),
        ("查良镛", "zha liang yong"),
        ("覃振", "qin zhen"),
        ("缪可", "miao ke"),
        ("翟志刚", "zhai zhi gang"),
        ("乐毅", "yue yi"),
        ("盖叫天", "ge jiao tian"),
        ("种师道", "chong shi dao"),
        ("秘书", "bi shu"),
        ("员工", "yun gong"),
        ("繁漪", "po yi"),
        ("尉迟恭", "yu chi gong"),
        ("万俟卨", "mo qi xie"),
        ("长孙无忌", "zhang sun wu ji"),
        ("單雄信", "shan xiong xin"),
        ("张伟", "zhang wei"),
        ("吕布", "lv bu"),
    ],
)
def test_surname_readings(name: str, expected: str) -> None:
    assert name_pinyin(name) == expected


def test_given_name_uses_normal_reading() -> None:
    # 曾 and 单 as given-name characters are not surnames.
    assert name_pinyin("李曾") == "li ceng"
    assert name_pinyin("王单") == "wang dan"


def test_normalisation() -> None:
    assert name_pinyin(" 张 伟 ") == "zhang wei"
    assert name_pinyin("买买提·艾力") == "mai mai ti ai li"
    assert split_surname("买买提·艾力") == ("", "买买提·艾力")
    assert split_surname("欧阳修") == ("欧", "阳修")
    assert split_surname("尉迟恭") == ("尉迟", "恭")
    assert name_pinyin("") == ""


def test_match_keys_bounded_and_include_primary() -> None:
    keys = pinyin_match_keys("李行")
    assert "li xing" in keys
    assert "li hang" in keys
    assert not pinyin_match_keys("李行") - {"li xing", "li hang", "li heng"}
    assert pinyin_match_keys("曾乐") == {"zeng le", "zeng yue"}
    # Surname reading is fixed, not a heteronym.
    assert not any(k.startswith("ceng") for k in pinyin_match_keys("曾国藩"))
    assert len(pinyin_match_keys("单行乐重长")) <= 8
    assert pinyin_match_keys("") == set()


def test_match_keys_block_heteronym_typo() -> None:
    assert pinyin_match_keys("李行") & pinyin_match_keys("李航")


def facts(
    name: str, birth: date | None, idx: str | None = None, region: str | None = None
) -> PersonFacts:
    return PersonFacts(id_index=idx, name=name, birth_date=birth, household_region_code=region)


BIRTH = date(1990, 1, 1)


def test_same_citizen_id() -> None:
    a = facts("张伟", BIRTH, idx="abc")
    b = facts("李四", date(1980, 5, 5), idx="abc")
    assert match_reasons(a, b) == ["same_citizen_id"]
    assert match_reasons(facts("张伟", BIRTH), facts("李四", BIRTH)) == []


def test_same_household_place_name_birth_date() -> None:
    a = facts("张伟", BIRTH, region="440306")
    b = facts("张伟", BIRTH, region="440306")
    assert match_reasons(a, b) == [
        "same_household_place_name_birth_date",
        "same_name_pinyin_birth_date",
    ]
    c = facts("张伟", BIRTH, region="110105")
    assert match_reasons(a, c) == ["same_name_pinyin_birth_date"]


def test_duplicate_by_pinyin_typo() -> None:
    a = facts("张伟", BIRTH, region="440306")
    b = facts("张玮", BIRTH, region="440306")
    # Different characters: not the exact-name household rule, but a pinyin match.
    assert match_reasons(a, b) == ["same_name_pinyin_birth_date"]
    # Every character different but the same pinyin still matches.
    assert match_reasons(facts("王小明", BIRTH), facts("汪晓鸣", BIRTH)) == [
        "same_name_pinyin_birth_date"
    ]


def test_no_match_with_different_birth_date() -> None:
    assert match_reasons(facts("张伟", BIRTH), facts("张玮", date(1990, 1, 2))) == []
    assert match_reasons(facts("张伟", None), facts("张伟", None)) == []


def test_no_match_with_different_pinyin() -> None:
    assert match_reasons(facts("张伟", BIRTH), facts("张三", BIRTH)) == []
    # 曾 (zeng, surname) vs 层/岑 (ceng/cen): different pinyin.
    assert match_reasons(facts("曾伟", BIRTH), facts("岑伟", BIRTH)) == []
    assert match_reasons(facts("曾伟", BIRTH), facts("增伟", BIRTH)) == [
        "same_name_pinyin_birth_date"
    ]
