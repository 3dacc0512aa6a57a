"""Plain unit tests of notify-svc's domain rules (no HTTP, no broker)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gridgov_common.errors import Problem
from gridgov_notify.departments import (
    add_secret,
    matching_prefix,
    public_secrets,
    remove_secret,
    validate_jurisdictions,
)
from gridgov_notify.evaluation import median, percentile, summarise
from gridgov_notify.models import Department, Dispatch, RoutingRule
from gridgov_notify.rules import DEFAULT_RULES, rule_matches, validate_rule
from gridgov_notify.webhooks import generate_secret

NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def dept(**kw) -> Department:
    return Department(
        id="d",
        name="d",
        type="police_station",
        jurisdictions=["440306001"],
        webhook_secrets=[],
        **kw,
    )


def test_matching_prefix_prefers_the_longest():
    d = dept()
    d.jurisdictions = ["4403", "440306001", "440306001001"]
    assert matching_prefix(d, "440306001001002") == "440306001001"
    assert matching_prefix(d, "440306002001001") == "4403"
    assert matching_prefix(d, "440406001001001") is None


def test_jurisdictions_validated():
    assert validate_jurisdictions([" 440306 ", "440306"]) == ["440306"]
    for bad in ([], ["44x"], ["4"], ["4403060010010011"]):
        with pytest.raises(Problem):
            validate_jurisdictions(bad)


def test_secret_rotation_keeps_two_and_never_shows_them():
    d = dept(webhook_url="http://x/")
    s1, s2, s3 = (generate_secret() for _ in range(3))
    e1 = add_secret(d, s1, NOW)
    add_secret(d, s2, NOW)
    assert [s["secret"] for s in d.webhook_secrets] == [s1, s2]
    add_secret(d, s3, NOW)
    assert [s["secret"] for s in d.webhook_secrets] == [s2, s3]
    shown = str(public_secrets(d))
    assert s2 not in shown and s3 not in shown
    with pytest.raises(Problem):
        remove_secret(d, e1["id"])  # already rotated out
    remove_secret(d, d.webhook_secrets[0]["id"])
    with pytest.raises(Problem):
        remove_secret(d, d.webhook_secrets[0]["id"])  # the last one while a URL is set
    with pytest.raises(Problem):
        add_secret(d, "whsec_c2hvcnQ=", NOW)  # too short


def rule(**kw) -> RoutingRule:
    base = dict(
        rule_id="r",
        version=1,
        name="r",
        event_type="gridgov.inspection.hazard.reported",
        match={},
        grid_classes=None,
        department_types=["police_station"],
        ack_sla="15m",
        feedback_sla="1wd",
        active=True,
    )
    base.update(kw)
    return RoutingRule(**base)


def test_rule_matching_on_payload_and_grid_class():
    r = rule(match={"severity": ["major"]}, grid_classes=["key", "enhanced"])
    assert rule_matches(r, {"severity": "major"}, "key")
    assert not rule_matches(r, {"severity": "general"}, "key")
    assert not rule_matches(r, {"severity": "major"}, "regular")
    assert not rule_matches(r, {"severity": "major"}, None)
    assert not rule_matches(rule(active=False), {}, None)
    assert rule_matches(rule(), {"anything": 1}, None)


def test_default_rules_are_valid_and_cover_the_issue():
    for data in DEFAULT_RULES:
        validate_rule(data)
    by_type: dict[str, set[str]] = {}
    for data in DEFAULT_RULES:
        by_type.setdefault(data["event_type"], set()).update(data["department_types"])
    front = {"police_station", "fire_brigade", "community_committee"}
    assert by_type["gridgov.inspection.hazard.reported"] == front
    assert by_type["gridgov.inspection.checkpoint.missed"] == {"community_committee"}
    assert by_type["gridgov.population.house.overcrowded"] == front
    assert by_type["gridgov.population.special_group.flagged"] == {
        "community_committee",
        "education",
        "health",
    }
    with pytest.raises(Problem):
        validate_rule({**DEFAULT_RULES[0], "ack_sla": "15 minutes"})
    with pytest.raises(Problem):
        validate_rule({**DEFAULT_RULES[0], "department_types": ["army"]})


def test_percentiles():
    assert median([]) is None and percentile([], 90) is None
    assert median([3, 1, 2]) == 2 and median([1, 2, 3, 4]) == 2.5
    assert percentile(list(range(1, 11)), 90) == 9
    assert percentile([5], 90) == 5


def test_summarise_counts_sla_escalations_and_reroutes():
    def d(ack_after, due_after, **kw):
        return Dispatch(
            created_at=NOW,
            ack_due_at=NOW + timedelta(minutes=due_after),
            feedback_due_at=NOW + timedelta(days=1),
            acknowledged_at=NOW + timedelta(minutes=ack_after) if ack_after is not None else None,
            **kw,
        )

    rows = [
        d(5, 15, state="acknowledged"),
        d(
            20,
            15,
            state="closed",
            forwarded_to="x",
            feedback_result="not_our_responsibility",
            feedback_at=NOW + timedelta(minutes=30),
        ),
        d(None, 15, state="escalated", escalated_at=NOW + timedelta(minutes=16)),
    ]
    out = summarise(rows, failed_deliveries=2)
    assert out["received"] == 3 and out["acknowledged_within_sla"] == 1
    assert out["time_to_ack_seconds"]["median"] == 750.0
    assert out["escalations"] == 1 and out["reroutes"] == 1 and out["failed_deliveries"] == 2
    assert out["time_to_feedback_seconds"]["p90"] == 1800.0
