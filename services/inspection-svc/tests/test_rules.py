"""Plain unit tests of the domain rules (no HTTP)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from gridgov_inspection import catalogue, tagkeys
from gridgov_inspection.hazards import ALLOWED, can_move, target_for_dispatch
from gridgov_inspection.settings import Settings

FACTORS = {"enhanced": 0.5, "key": 0.75, "regular": 1.0}


@pytest.mark.parametrize(
    ("base", "cls", "expected"),
    [
        (30, "enhanced", 15),
        (30, "key", 22),
        (30, "regular", 30),
        (30, None, 30),
        (7, "enhanced", 3),
        (1, "enhanced", 1),
        (90, "key", 67),
        (30, "unknown", 30),
    ],
)
def test_cycle_rule(base, cls, expected):
    assert catalogue.effective_cycle_days(base, cls, FACTORS) == expected


def test_working_days_skip_weekends_and_holidays():
    # Friday 2026-01-02 10:00 CST + 3 working days -> Wednesday 2026-01-07 end of day CST.
    fri = datetime(2026, 1, 2, 2, 0, tzinfo=UTC)
    assert catalogue.add_working_days(fri, 3) == datetime(2026, 1, 7, 15, 59, 59, tzinfo=UTC)
    # With Monday a holiday, it is Thursday.
    got = catalogue.add_working_days(fri, 3, [date(2026, 1, 5)])
    assert got == datetime(2026, 1, 8, 15, 59, 59, tzinfo=UTC)
    # Late Friday UTC is already Saturday in China: counting starts from Saturday.
    late = datetime(2026, 1, 2, 17, 0, tzinfo=UTC)
    assert catalogue.add_working_days(late, 1) == datetime(2026, 1, 5, 15, 59, 59, tzinfo=UTC)


def test_shipped_templates_cover_every_type():
    for code in catalogue.VENUE_TYPES:
        items = catalogue.default_items(code)
        codes = [i["code"] for i in items]
        assert len(codes) == len(set(codes))
        assert {"extinguishers", "exits_clear", "no_living_quarters"} <= set(codes)
    assert "gas_safe" in {i["code"] for i in catalogue.default_items("restaurant")}


def test_hazard_state_machine():
    assert can_move(None, "open") and not can_move(None, "closed")
    assert can_move("rectification_reported", "open")  # rework
    assert not can_move("acknowledged", "open")
    assert ALLOWED["closed"] == set()
    # closed only from states a re-inspection can close
    assert all(can_move(s, "closed") for s in ALLOWED if s not in (None, "closed"))


def test_dispatch_mapping():
    assert target_for_dispatch("open", "pending", None) == "dispatched"
    assert target_for_dispatch("dispatched", "delivered", None) is None  # first one only
    assert target_for_dispatch("open", "acknowledged", None) == "acknowledged"
    assert target_for_dispatch("acknowledged", "acknowledged", None) is None
    assert target_for_dispatch("acknowledged", "feedback_received", "rectified") == (
        "rectification_reported"
    )
    assert target_for_dispatch("acknowledged", "feedback_received", "in_progress") is None
    assert target_for_dispatch("closed", "acknowledged", None) is None


def test_tag_keys_sealed_with_aes_gcm_bound_to_uid():
    s = Settings(tag_key_secret="11" * 32)
    blob = tagkeys.seal(s, "041E3C8A2D6B80", bytes(16))
    assert tagkeys.unseal(s, "041e3c8a2d6b80", blob) == bytes(16)
    with pytest.raises(ValueError, match="cannot be decrypted"):
        tagkeys.unseal(s, "04AAAAAAAAAAAA", blob)  # copied to another tag's row
    with pytest.raises(ValueError, match="cannot be decrypted"):
        tagkeys.unseal(Settings(tag_key_secret="22" * 32), "041E3C8A2D6B80", blob)
    with pytest.raises(ValueError):
        tagkeys.master_key(Settings(tag_key_secret="short"))
