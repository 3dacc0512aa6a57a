"""Standard Webhooks (https://www.standardwebhooks.com) signing and the delivery retry policy.

Signing is done here with ``hmac`` rather than ``standardwebhooks.Webhook.sign`` because that
method takes the body as ``str`` and the timestamp as a ``datetime`` that it force-labels as
UTC: we sign the exact bytes we send with the integer timestamp we put in the header, so the
signature cannot drift from the wire. Tests check the output against the reference verifier.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import random
import secrets as _secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import Literal

SECRET_PREFIX = "whsec_"  # noqa: S105 - a format marker, not a secret
SIGNATURE_VERSION = "v1"


def generate_secret(num_bytes: int = 32) -> str:
    """A new ``whsec_<base64>`` secret (the spec recommends 24–64 random bytes)."""
    if not 24 <= num_bytes <= 64:
        raise ValueError(f"secret length must be 24..64 bytes, got {num_bytes}")
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(num_bytes)).decode("ascii")


def decode_secret(secret: str) -> bytes:
    """Key bytes of a ``whsec_<base64>`` secret; ``ValueError`` if it is not one."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"webhook secret must start with {SECRET_PREFIX!r}")
    encoded = secret[len(SECRET_PREFIX) :]
    try:
        # Tolerate missing padding like the reference library, but reject non-base64 junk.
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError("webhook secret is not valid base64 after 'whsec_'") from exc
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256(key, "{msg_id}.{timestamp}.{body}")>`` for one secret."""
    if not msg_id:
        raise ValueError("msg_id must not be empty")
    signed = f"{msg_id}.{int(timestamp)}.".encode() + body
    digest = hmac.new(decode_secret(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def signature_header(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """``webhook-signature`` value: one signature per active secret, space separated.

    Two secrets are active during rotation, so receivers on either key keep verifying.
    """
    if not secrets:
        raise ValueError("at least one active webhook secret is required")
    return " ".join(sign(s, msg_id, timestamp, body) for s in secrets)


def webhook_headers(
    secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three Standard Webhooks headers for one delivery."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp)),
        "webhook-signature": signature_header(secrets, msg_id, timestamp, body),
    }


class Outcome(Enum):
    SUCCESS = "success"
    RETRY = "retry"
    FAIL = "fail"


def classify(status_code: int | None) -> Outcome:
    """Outcome of one delivery attempt; ``None`` means timeout or connection error."""
    if status_code is None or status_code in (408, 429) or 500 <= status_code <= 599:
        return Outcome.RETRY
    if 200 <= status_code <= 299:
        return Outcome.SUCCESS
    # Other 4xx (and 1xx/3xx: redirects are not followed) won't fix themselves by retrying.
    return Outcome.FAIL


def _parse_retry_after(value: str, now: datetime) -> timedelta | None:
    """Retry-After as delta-seconds or HTTP-date (RFC 9110 §10.2.3); ``None`` if unusable."""
    value = value.strip()
    if value.isascii() and value.isdigit():
        return timedelta(seconds=min(int(value), 10**9))  # clamp: absurd values overflow
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" dates parse naive; HTTP-dates are always GMT
        when = when.replace(tzinfo=UTC)
    return max(when - now, timedelta(0))


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded by a total retry horizon.

    ``attempt`` is the 1-based number of the attempt that just failed: after attempt 1 the
    backoff ceiling is ``base``, then ``base * factor``, ... capped at ``max_delay``. With
    ``jitter="full"`` the delay is uniform in ``[0, ceiling]`` (AWS "full jitter") so that
    endpoints recovering from an outage are not hit by synchronized retries.
    """

    base: timedelta = timedelta(seconds=1)
    factor: float = 2.0
    max_delay: timedelta = timedelta(minutes=10)
    horizon: timedelta = timedelta(hours=24)
    jitter: Literal["full", "none"] = "full"
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.base <= timedelta(0):
            raise ValueError("base must be positive")
        if self.factor < 1:
            raise ValueError("factor must be >= 1")
        if self.max_delay < self.base:
            raise ValueError("max_delay must be >= base")
        if self.horizon <= timedelta(0):
            raise ValueError("horizon must be positive")
        if self.jitter not in ("full", "none"):
            raise ValueError(f"jitter must be 'full' or 'none', got {self.jitter!r}")

    def backoff_ceiling(self, attempt: int) -> timedelta:
        if attempt < 1:
            raise ValueError(f"attempt must be >= 1, got {attempt}")
        cap = self.max_delay.total_seconds()
        try:
            seconds = self.base.total_seconds() * self.factor ** (attempt - 1)
        except OverflowError:  # huge attempt counts: the cap applies anyway
            seconds = math.inf
        return timedelta(seconds=min(seconds, cap))

    def next_delay(
        self, attempt: int, retry_after: str | None = None, now: datetime | None = None
    ) -> timedelta:
        """Wait before the next attempt.

        A parseable ``Retry-After`` wins over the backoff (the receiver knows its own load),
        used as-is without jitter and capped only at ``horizon``; ``now`` (tz-aware,
        default: current UTC time) resolves HTTP-date values. Unparseable values are
        ignored.
        """
        ceiling = self.backoff_ceiling(attempt)
        if retry_after is not None:
            if now is None:
                now = datetime.now(UTC)
            elif now.tzinfo is None:
                raise ValueError("now must be timezone-aware")
            hinted = _parse_retry_after(retry_after, now)
            if hinted is not None:
                return min(hinted, self.horizon)
        if self.jitter == "none":
            return ceiling
        return timedelta(seconds=self.rng.uniform(0, ceiling.total_seconds()))

    @staticmethod
    def should_retry(status_code: int | None) -> bool:
        """Retry on timeout/connection error (``None``), 408, 429 and 5xx only."""
        return classify(status_code) is Outcome.RETRY

    def gave_up(self, first_attempt_at: datetime, now: datetime) -> bool:
        """True once more than ``horizon`` has passed since the first attempt."""
        if first_attempt_at.tzinfo is None or now.tzinfo is None:
            raise ValueError("first_attempt_at and now must be timezone-aware")
        return now - first_attempt_at > self.horizon
