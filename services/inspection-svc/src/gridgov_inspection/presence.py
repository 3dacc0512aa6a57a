"""On-site presence checks for checkpoint scans: GPS distance and scan-time freshness."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

__all__ = [
    "EARTH_RADIUS_M",
    "PresenceError",
    "ScanTimeError",
    "check_presence",
    "check_scan_time",
    "distance_m",
]

# WGS-84 mean radius (IUGG R1); haversine on a sphere is within ~0.5% - ample at 50 m scale.
EARTH_RADIUS_M = 6_371_008.8


class PresenceError(ValueError):
    """The device fix is too far from the checkpoint (or is not a usable fix)."""


class ScanTimeError(ValueError):
    """The scan timestamp is in the future, stale, or not timezone-aware."""


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle (haversine) distance in metres between two lon/lat points in degrees."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlmb = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    # min() guards against a > 1 from rounding for near-antipodal points.
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def _check_point(lon: float, lat: float, what: str) -> None:
    # NaN compares False with everything, so it must be rejected explicitly or it would pass.
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise PresenceError(f"invalid {what} coordinates: lon={lon!r}, lat={lat!r}")


def check_presence(
    *,
    checkpoint_lon: float,
    checkpoint_lat: float,
    fix_lon: float,
    fix_lat: float,
    accuracy_m: float,
    radius_m: float = 50.0,
    max_accuracy_m: float = 50.0,
) -> None:
    """Raise PresenceError unless the fix is within ``radius_m`` + accuracy of the checkpoint.

    Keyword-only because four bare floats make a lon/lat swap too easy. The reported
    accuracy widens the radius, but only up to ``max_accuracy_m``: otherwise a fix
    claiming 5 km accuracy would "pass" from anywhere in town.
    """
    _check_point(checkpoint_lon, checkpoint_lat, "checkpoint")
    _check_point(fix_lon, fix_lat, "GPS fix")
    if not (math.isfinite(accuracy_m) and accuracy_m >= 0):
        raise PresenceError(f"invalid GPS accuracy: {accuracy_m!r}")
    if radius_m < 0 or max_accuracy_m < 0:
        raise ValueError("radius_m and max_accuracy_m must be non-negative")

    widening = min(accuracy_m, max_accuracy_m)
    distance = distance_m(checkpoint_lon, checkpoint_lat, fix_lon, fix_lat)
    if distance > radius_m + widening:
        capped = f" (reported {accuracy_m:.0f} m, capped)" if accuracy_m > max_accuracy_m else ""
        # ceil: never round the distance down to a figure that would look allowed.
        raise PresenceError(
            f"GPS fix is {math.ceil(distance)} m from the checkpoint; "
            f"allowed {radius_m:.0f} m + accuracy {widening:.0f} m{capped}"
        )


def _fmt(delta: timedelta) -> str:
    # ceil: 2 min 0.4 s past a 2 min limit must not print as "2 min".
    secs = math.ceil(abs(delta.total_seconds()))
    h, rem = divmod(secs, 3600)
    m, s = divmod(rem, 60)
    parts = [f"{h} h" if h else "", f"{m} min" if m else "", f"{s} s" if s else ""]
    return " ".join(p for p in parts if p) or "0 s"


def _is_aware(dt: datetime) -> bool:
    return dt.tzinfo is not None and dt.utcoffset() is not None


def check_scan_time(
    scan_time: datetime, now: datetime, max_age: timedelta, max_skew: timedelta
) -> None:
    """Reject scans from the future (beyond clock skew) or older than ``max_age``."""
    # Naive datetimes are ambiguous (device-local? UTC?) and can't be compared safely.
    if not _is_aware(scan_time):
        raise ScanTimeError("scan time must be timezone-aware")
    if not _is_aware(now):
        raise ScanTimeError("now must be timezone-aware")
    if max_age < timedelta(0) or max_skew < timedelta(0):
        raise ValueError("max_age and max_skew must be non-negative")

    ahead = scan_time - now
    if ahead > max_skew:
        raise ScanTimeError(
            f"scan time is {_fmt(ahead)} in the future (allowed clock skew {_fmt(max_skew)})"
        )
    if -ahead > max_age:
        raise ScanTimeError(f"scan is {_fmt(ahead)} old (maximum age {_fmt(max_age)})")
