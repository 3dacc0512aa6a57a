"""Settings of inspection-svc (environment variables prefixed ``GRIDGOV_``)."""

from __future__ import annotations

from datetime import date

from pydantic import SecretStr

from gridgov_common.settings import VAR_DIR, ServiceSettings

from .photos import MAX_PIXELS


class Settings(ServiceSettings):
    service_name: str = "inspection-svc"

    # Photos: content-addressed under this directory; larger uploads are refused with 413.
    photo_dir: str = str(VAR_DIR / "photos")
    photo_max_bytes: int = 10 * 1024 * 1024
    # A JPEG or PNG that declares more pixels than this is refused (422).
    photo_max_pixels: int = MAX_PIXELS
    max_photos: int = 10
    # One inspection upload: its photos at their largest plus the form.
    max_upload_bytes: int = 10 * 10 * 1024 * 1024 + 1024 * 1024

    # Proof of presence (each rule configurable).
    presence_radius_m: float = 50.0
    presence_max_accuracy_m: float = 50.0  # the reported accuracy widens the radius, capped
    scan_max_age_seconds: int = 15 * 60
    scan_max_skew_seconds: int = 120
    require_photo: bool = True  # default; a template may say requires_photo=false

    # AES-256-GCM key (base64 or hex of 32 bytes) for NTAG 424 tag keys at rest.
    # Empty: derived from the JWT signing key (embedded default only).
    tag_key_secret: SecretStr = SecretStr("")

    # Check cycle rule: effective days = max(1, floor(base days x factor of the grid class)).
    cycle_factors: dict[str, float] = {"enhanced": 0.5, "key": 0.75, "regular": 1.0}
    default_cycle_days: int = 30

    # Rectification deadline in working days per severity (Mon-Fri, minus `holidays`,
    # counted in China Standard Time; the deadline is the end of that working day).
    hazard_deadline_working_days: dict[str, int] = {"general": 3, "major": 1}
    holidays: list[date] = []

    # Background sweep (statuses, misses, overdue hazards), lease-protected.
    sweep_interval_seconds: float = 30.0
    sweep_enabled: bool = True

    # Spot checks: share of passed inspections sampled for re-inspection.
    spot_check_share: float = 0.05
