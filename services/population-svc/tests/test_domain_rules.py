"""Plain unit tests of the business rules (no HTTP)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from gridgov_common.errors import Problem
from gridgov_population import houses, permits, points, registrations, staffing
from gridgov_population.access import mask_name
from gridgov_population.models import PointsApplication
from gridgov_population.special_groups import special_groups


def test_overcrowding_threshold():
    assert houses.assess(12.0, 4, 3.0).overcrowded is False  # exactly 3 m² is fine
    assert houses.assess(11.9, 4, 3.0).overcrowded is True
    assert houses.assess(10.0, 0, 3.0).overcrowded is False
    assert houses.assess(10.0, 4, 2.0).overcrowded is False  # configurable minimum


def test_house_code_under_community():
    assert houses.house_code("440306001001", 7) == "440306001001000007"
    with pytest.raises(Problem):
        houses.house_code("440306001001", 1_000_000)


def test_classification():
    assert registrations.classify("440306", "440306001001001") == "local"
    assert registrations.classify("420102", "440306001001001") == "inflow"
    assert registrations.classify(None, "440306001001001") == "inflow"


def test_departure_rules():
    today = date(2026, 5, 1)
    with pytest.raises(Problem) as exc:
        registrations.check_departure(date(2026, 4, 1), date(2026, 3, 31), today)
    assert exc.value.slug == "departure-before-arrival"
    registrations.check_departure(date(2026, 4, 1), date(2026, 4, 1), today)


def test_continuity_across_moves_and_gaps():
    today = date(2026, 6, 1)
    moves = [(date(2025, 1, 1), date(2025, 6, 1)), (date(2025, 6, 1), None)]
    assert registrations.continuous_since(moves, today) == date(2025, 1, 1)
    gap = [(date(2025, 1, 1), date(2025, 6, 1)), (date(2025, 7, 1), None)]
    assert registrations.continuous_since(gap, today) == date(2025, 7, 1)
    assert registrations.continuous_since([(date(2025, 1, 1), date(2025, 2, 1))], today) is None


def test_permit_eligibility_six_months():
    today = date(2026, 6, 15)
    five = [(permits.add_months(today, -5), None)]
    with pytest.raises(Problem) as exc:
        permits.check_eligibility(five, ["job"], today)
    assert exc.value.slug == "residence-too-short"
    six = [(permits.add_months(today, -6), None)]
    assert permits.check_eligibility(six, ["job"], today) == date(2025, 12, 15)
    with pytest.raises(Problem) as exc:
        permits.check_eligibility(six, [], today)
    assert exc.value.slug == "evidence-required"


def test_add_months_clamps():
    assert permits.add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert permits.add_months(date(2024, 2, 29), 12) == date(2025, 2, 28)
    assert permits.add_months(date(2026, 3, 15), -1) == date(2026, 2, 15)


def test_endorsement_window_and_late_restore():
    issued = date(2025, 3, 10)
    due = date(2026, 3, 10)
    with pytest.raises(Problem) as exc:
        permits.endorse_dates(issued, due, date(2026, 2, 9))
    assert exc.value.slug == "endorsement-outside-window"
    assert permits.endorse_dates(issued, due, date(2026, 2, 10)) == date(2027, 3, 10)
    assert permits.endorse_dates(issued, due, date(2026, 3, 9)) == date(2027, 3, 10)
    # Late (suspended): restored until the next anniversary after the endorsement.
    assert permits.endorse_dates(issued, due, date(2026, 4, 1)) == date(2027, 3, 10)
    assert permits.endorse_dates(issued, due, date(2027, 5, 1)) == date(2028, 3, 10)
    assert permits.status_on(due, date(2026, 3, 9)) == "valid"
    assert permits.status_on(due, date(2026, 3, 10)) == "suspended"


def test_special_groups_minor_from_birth_date():
    today = date(2026, 6, 1)
    assert special_groups([], date(2010, 6, 2), today) == ["minor_under_16"]
    assert special_groups([], date(2010, 6, 1), today) == []
    assert special_groups(["returnee"], date(1980, 1, 1), today) == ["returnee"]


def test_mask_name():
    assert mask_name("张三") == "张*"
    assert mask_name("王小明") == "王*明"
    assert mask_name("欧阳娜娜") == "欧**娜"


def test_staffing_norm():
    g = staffing.assess("g", 1200, 2, 500)
    assert g.required_coordinators == 3 and g.understaffed
    assert g.residents_per_coordinator == 600.0
    assert not staffing.assess("g", 1000, 2, 500).understaffed
    assert staffing.assess("g", 10, 0, 500).understaffed
    assert not staffing.assess("g", 0, 0, 500).understaffed


TABLE = [
    {
        "code": "education",
        "category": "education",
        "label": "学历",
        "kind": "choice",
        "choices": {"high_school": 10, "bachelor": 50, "master": 80},
    },
    {
        "code": "residence_years",
        "category": "residence",
        "label": "居住年限",
        "kind": "per_unit",
        "points_per_unit": 5,
        "cap": 50,
    },
    {
        "code": "volunteer_hours",
        "category": "contribution",
        "label": "志愿服务",
        "kind": "per_unit",
        "points_per_unit": 0.1,
        "cap": 20,
    },
    {
        "code": "penalties",
        "category": "penalty",
        "label": "违法记录",
        "kind": "per_unit",
        "points_per_unit": -30,
    },
]


def test_score_lines_caps_and_determinism():
    facts = {"education": "bachelor", "residence_years": 12, "volunteer_hours": 55, "penalties": 1}
    lines, total = points.score(TABLE, facts)
    assert [ln["points"] for ln in lines] == [50.0, 50.0, 5.5, -30.0]
    assert lines[1]["capped"] is True
    assert total == 75.5
    assert points.score(TABLE, facts) == (lines, total)
    with pytest.raises(Problem):
        points.score(TABLE, {"education": "phd"})
    with pytest.raises(Problem):
        points.score(TABLE, {"lottery": 1})


def test_ranking_tie_break_published_rule():
    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def app(id_, score, res, minutes):
        return PointsApplication(
            id=id_,
            score=score,
            submitted_at=t0 + timedelta(minutes=minutes),
            lines=[{"code": "residence_years", "points": res}],
        )

    apps = [app("c", 80, 10, 1), app("a", 80, 20, 5), app("b", 80, 20, 2), app("d", 90, 0, 9)]
    rule = ["score_desc", "residence_years_desc", "submitted_at_asc", "id_asc"]
    assert [a.id for a in points.rank(apps, rule)] == ["d", "b", "a", "c"]
    assert [a.id for a in points.rank(list(reversed(apps)), rule)] == ["d", "b", "a", "c"]


def test_residence_years():
    today = date(2026, 1, 1)
    assert (
        points.residence_years(
            [(date(2020, 1, 1), date(2023, 1, 1)), (date(2023, 1, 1), None)], today
        )
        == 6
    )
    assert points.residence_years([(date(2025, 6, 1), None)], today) == 0
