import pytest

from gridgov_grid.codes import (
    CodeError,
    Level,
    level_of,
    next_free_code,
    parent_code,
    validate_child_code,
)

# --- level_of / parent_code ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "level"),
    [
        ("440306", Level.DISTRICT),
        ("440306001", Level.STREET),
        ("440306001001", Level.COMMUNITY),
        ("440306001001001", Level.GRID),
    ],
)
def test_level_of(code: str, level: Level) -> None:
    assert level_of(code) is level


@pytest.mark.parametrize("code", ["", "4403", "4403060", "44030600100", "4403060010010011"])
def test_level_of_rejects_bad_lengths(code: str) -> None:
    with pytest.raises(CodeError, match="digits"):
        level_of(code)


@pytest.mark.parametrize("code", ["44030a", "440 306", "-44030", "４４０３０６", "44030６"])
def test_level_of_rejects_non_digits(code: str) -> None:
    with pytest.raises(CodeError, match="only digits"):
        level_of(code)


def test_level_of_rejects_non_string() -> None:
    with pytest.raises(CodeError, match="string"):
        level_of(440306)  # type: ignore[arg-type]


def test_code_error_is_value_error() -> None:
    assert issubclass(CodeError, ValueError)


def test_parent_code() -> None:
    assert parent_code("440306") is None
    assert parent_code("440306001") == "440306"
    assert parent_code("440306001002") == "440306001"
    assert parent_code("440306001002003") == "440306001002"


# --- validate_child_code ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parent", "code", "level", "kind"),
    [
        (None, "440306", Level.DISTRICT, None),
        (None, "441900", Level.DISTRICT, None),  # city without districts (Dongguan)
        ("440306", "440306001", Level.STREET, None),
        ("440306", "440306099", Level.STREET, "subdistrict"),
        ("440306", "440306100", Level.STREET, "town"),
        ("440306", "440306200", Level.STREET, "township"),
        ("440306", "440306399", Level.STREET, "township"),
        ("440306001", "440306001001", Level.COMMUNITY, "residents_committee"),
        ("440306001", "440306001199", Level.COMMUNITY, "residents_committee"),
        ("440306001", "440306001200", Level.COMMUNITY, "village"),
        ("440306001", "440306001399", Level.COMMUNITY, None),
        ("440306001001", "440306001001001", Level.GRID, None),
        ("440306001001", "440306001001999", Level.GRID, None),
        ("440306", "440306001", "street", None),  # plain strings work as levels
    ],
)
def test_validate_child_code_accepts(
    parent: str | None, code: str, level: Level, kind: str | None
) -> None:
    validate_child_code(parent, code, level, kind)


def test_code_must_extend_parent() -> None:
    with pytest.raises(CodeError, match="code 440306001 does not extend parent 440307"):
        validate_child_code("440307", "440306001", Level.STREET)


def test_code_level_must_match() -> None:
    with pytest.raises(CodeError, match=r"is a community code .*expected a street code"):
        validate_child_code("440306", "440306001001", Level.STREET)


def test_parent_must_be_level_above() -> None:
    with pytest.raises(CodeError, match="parent 440306 is a district code"):
        validate_child_code("440306", "440306001001", Level.COMMUNITY)


def test_parent_required_below_district() -> None:
    with pytest.raises(CodeError, match="needs a parent district"):
        validate_child_code(None, "440306001", Level.STREET)


def test_district_has_no_parent() -> None:
    with pytest.raises(CodeError, match="cannot have a parent"):
        validate_child_code("440300", "440306", Level.DISTRICT)
    with pytest.raises(CodeError, match="000000"):
        validate_child_code(None, "000000", Level.DISTRICT)


@pytest.mark.parametrize(
    ("parent", "code", "level"),
    [
        ("440306", "440306000", Level.STREET),
        ("440306001", "440306001000", Level.COMMUNITY),
        ("440306001001", "440306001001000", Level.GRID),
    ],
)
def test_segment_000_never_valid(parent: str, code: str, level: Level) -> None:
    with pytest.raises(CodeError, match="000"):
        validate_child_code(parent, code, level)


@pytest.mark.parametrize(
    ("parent", "code", "level", "kind"),
    [
        ("440306", "440306400", Level.STREET, None),
        ("440306", "440306100", Level.STREET, "subdistrict"),
        ("440306", "440306099", Level.STREET, "town"),
        ("440306", "440306200", Level.STREET, "town"),
        ("440306", "440306199", Level.STREET, "township"),
        ("440306001", "440306001400", Level.COMMUNITY, None),
        ("440306001", "440306001200", Level.COMMUNITY, "residents_committee"),
        ("440306001", "440306001199", Level.COMMUNITY, "village"),
    ],
)
def test_segment_out_of_range(parent: str, code: str, level: Level, kind: str | None) -> None:
    with pytest.raises(CodeError, match="segment must be"):
        validate_child_code(parent, code, level, kind)


def test_unknown_kind() -> None:
    with pytest.raises(CodeError, match="unknown street kind 'village'"):
        validate_child_code("440306", "440306001", Level.STREET, "village")
    with pytest.raises(CodeError, match="no kind"):
        validate_child_code("440306001001", "440306001001001", Level.GRID, "town")


# --- next_free_code -----------------------------------------------------------------------


def test_next_free_first_code() -> None:
    assert next_free_code("440306", Level.STREET, []) == "440306001"
    assert next_free_code("440306001", Level.COMMUNITY, []) == "440306001001"
    assert next_free_code("440306001001", Level.GRID, []) == "440306001001001"


def test_next_free_skips_used_and_retired() -> None:
    # 001 active, 002 retired (must never be reissued), 004 active -> 003 is lowest free.
    used = ["440306001001001", "440306001001002", "440306001001004"]
    assert next_free_code("440306001001", Level.GRID, used) == "440306001001003"
    used.append("440306001001003")
    assert next_free_code("440306001001", Level.GRID, iter(used)) == "440306001001005"


def test_next_free_ignores_codes_of_other_parents() -> None:
    used = ["440307001", "440306002"]
    assert next_free_code("440306", Level.STREET, used) == "440306001"


def test_next_free_by_kind() -> None:
    assert next_free_code("440306", Level.STREET, [], kind="town") == "440306100"
    assert next_free_code("440306", Level.STREET, ["440306200"], "township") == "440306201"
    assert next_free_code("440306001", Level.COMMUNITY, [], kind="village") == "440306001200"
    used = [f"440306001{n:03d}" for n in range(1, 200)]  # all residents' committees taken
    assert next_free_code("440306001", Level.COMMUNITY, used) == "440306001200"


def test_next_free_exhausted() -> None:
    used = {f"440306{n:03d}" for n in range(1, 100)}
    with pytest.raises(CodeError, match=r"no free street \(subdistrict\) code left under 440306"):
        next_free_code("440306", Level.STREET, used, kind="subdistrict")
    grids = [f"440306001001{n:03d}" for n in range(1, 1000)]
    with pytest.raises(CodeError, match="no free grid code"):
        next_free_code("440306001001", Level.GRID, grids)


def test_next_free_result_validates() -> None:
    code = next_free_code("440306", Level.STREET, ["440306100"], kind="town")
    validate_child_code("440306", code, Level.STREET, "town")


def test_next_free_rejects_bad_parent() -> None:
    with pytest.raises(CodeError, match="parent 440306001 is a street code"):
        next_free_code("440306001", Level.STREET, [])
    with pytest.raises(CodeError, match="not allocated"):
        next_free_code("440306", Level.DISTRICT, [])
    with pytest.raises(CodeError, match="digits"):
        next_free_code("4403", Level.STREET, [])
