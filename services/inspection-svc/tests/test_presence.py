from datetime import UTC, datetime, timedelta

import pytest

from gridgov_inspection.presence import (
    PresenceError,
    ScanTimeError,
    check_presence,
    check_scan_time,
    distance_m,
)

# A checkpoint in central Helsinki (lon, lat).
CP_LON, CP_LAT = 24.9384, 60.1699
# 1 degree of latitude on the mean sphere.
M_PER_DEG_LAT = 6_371_008.8 * 3.141592653589793 / 180


def north_of_cp(metres: float) -> tuple[float, float]:
    return CP_LON, CP_LAT + metres / M_PER_DEG_LAT


def test_distance_zero() -> None:
    assert distance_m(CP_LON, CP_LAT, CP_LON, CP_LAT) == 0.0


def test_distance_known_values() -> None:
    lon, lat = north_of_cp(500)
    assert distance_m(CP_LON, CP_LAT, lon, lat) == pytest.approx(500, abs=1e-6)
    # Helsinki -> Tallinn is about 82 km.
    assert distance_m(24.9384, 60.1699, 24.7536, 59.4370) == pytest.approx(82_000, rel=0.02)
    # Antipodes: half the circumference, no math domain error.
    assert distance_m(0, 0, 180, 0) == pytest.approx(M_PER_DEG_LAT * 180)


def test_distance_argument_order_is_lon_lat() -> None:
    # Moving 1 degree of longitude at 60N is about half a degree of latitude.
    d_lon = distance_m(CP_LON, CP_LAT, CP_LON + 1, CP_LAT)
    assert d_lon == pytest.approx(M_PER_DEG_LAT * 0.4986, rel=0.01)


def check(metres: float, accuracy: float, **kw: float) -> None:
    lon, lat = north_of_cp(metres)
    check_presence(
        checkpoint_lon=CP_LON,
        checkpoint_lat=CP_LAT,
        fix_lon=lon,
        fix_lat=lat,
        accuracy_m=accuracy,
        **kw,
    )


def test_close_fix_passes() -> None:
    check(20, 5)
    check(55, 10)  # within 50 m + 10 m accuracy


def test_500m_away_rejected_with_message() -> None:
    with pytest.raises(PresenceError) as exc:
        check(511.6, 10)
    assert str(exc.value) == "GPS fix is 512 m from the checkpoint; allowed 50 m + accuracy 10 m"


def test_huge_accuracy_is_capped() -> None:
    with pytest.raises(PresenceError, match=r"allowed 50 m \+ accuracy 50 m \(reported 5000 m"):
        check(500, 5000)
    check(95, 5000)  # still within 50 + capped 50


def test_custom_radius_and_cap() -> None:
    check(150, 0, radius_m=200)
    with pytest.raises(PresenceError):
        check(60, 100, radius_m=50, max_accuracy_m=0)


@pytest.mark.parametrize("accuracy", [float("nan"), -1.0, float("inf")])
def test_bad_accuracy_rejected(accuracy: float) -> None:
    with pytest.raises(PresenceError, match="invalid GPS accuracy"):
        check(0, accuracy)


@pytest.mark.parametrize(("lon", "lat"), [(float("nan"), 0.0), (0.0, 91.0), (181.0, 0.0)])
def test_bad_coordinates_rejected(lon: float, lat: float) -> None:
    with pytest.raises(PresenceError, match="invalid GPS fix coordinates"):
        check_presence(
            checkpoint_lon=CP_LON, checkpoint_lat=CP_LAT, fix_lon=lon, fix_lat=lat, accuracy_m=5
        )


NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
AGE = timedelta(minutes=10)
SKEW = timedelta(minutes=2)


def test_scan_time_ok() -> None:
    check_scan_time(NOW, NOW, AGE, SKEW)
    check_scan_time(NOW - timedelta(minutes=9), NOW, AGE, SKEW)
    check_scan_time(NOW + timedelta(minutes=1), NOW, AGE, SKEW)


def test_future_scan_rejected() -> None:
    with pytest.raises(ScanTimeError) as exc:
        check_scan_time(NOW + timedelta(minutes=5), NOW, AGE, SKEW)
    assert str(exc.value) == "scan time is 5 min in the future (allowed clock skew 2 min)"


def test_stale_scan_rejected() -> None:
    with pytest.raises(ScanTimeError) as exc:
        check_scan_time(NOW - timedelta(hours=1, seconds=30), NOW, AGE, SKEW)
    assert str(exc.value) == "scan is 1 h 30 s old (maximum age 10 min)"


def test_other_timezone_compared_correctly() -> None:
    from datetime import timezone

    helsinki = timezone(timedelta(hours=3))
    check_scan_time(NOW.astimezone(helsinki), NOW, AGE, SKEW)


def test_naive_datetimes_rejected() -> None:
    with pytest.raises(ScanTimeError, match="timezone-aware"):
        check_scan_time(NOW.replace(tzinfo=None), NOW, AGE, SKEW)
    with pytest.raises(ScanTimeError, match="timezone-aware"):
        check_scan_time(NOW, NOW.replace(tzinfo=None), AGE, SKEW)
