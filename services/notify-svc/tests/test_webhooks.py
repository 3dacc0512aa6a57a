from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import time
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from gridgov_notify.webhooks import (
    Outcome,
    RetryPolicy,
    classify,
    decode_secret,
    generate_secret,
    sign,
    signature_header,
    webhook_headers,
)

BODY = json.dumps({"type": "hazard.reported", "data": {"id": "hz_1", "grid": "网格-07"}}).encode()


def test_generate_secret_format() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert len(decode_secret(secret)) == 32
    assert generate_secret() != secret


def test_sign_matches_spec_formula() -> None:
    key = b"0123456789abcdef0123456789abcdef"
    secret = "whsec_" + base64.b64encode(key).decode()
    expected = base64.b64encode(
        hmac.new(key, b"msg_1.1700000000." + BODY, hashlib.sha256).digest()
    ).decode()
    assert sign(secret, "msg_1", 1700000000, BODY) == f"v1,{expected}"


def test_sign_matches_reference_library_sign() -> None:
    secret = generate_secret()
    ts = 1700000000
    ref = Webhook(secret).sign("msg_1", datetime.fromtimestamp(ts, tz=UTC), BODY.decode())
    assert sign(secret, "msg_1", ts, BODY) == ref


def test_rotation_headers_verify_with_reference_library_for_both_secrets() -> None:
    old, new = generate_secret(), generate_secret()
    headers = webhook_headers([old, new], "msg_2Lh9", int(time.time()), BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(BODY, headers)


def test_tampered_body_fails_reference_verification() -> None:
    secret = generate_secret()
    headers = webhook_headers([secret], "msg_3", int(time.time()), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"hz_1", b"hz_2"), headers)


def test_signature_header_joins_with_spaces() -> None:
    a, b = generate_secret(), generate_secret()
    header = signature_header([a, b], "m", 1, b"{}")
    assert header == f"{sign(a, 'm', 1, b'{}')} {sign(b, 'm', 1, b'{}')}"


@pytest.mark.parametrize("bad", ["", "whsec_", "secret123", "whsec_!!notbase64!!"])
def test_bad_secrets_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        sign(bad, "m", 1, b"{}")


def test_unpadded_secret_accepted_like_reference() -> None:
    secret = generate_secret(25).rstrip("=")  # 25 bytes -> base64 needs padding
    ref = Webhook(secret).sign("m", datetime.fromtimestamp(1, tz=UTC), "{}")
    assert sign(secret, "m", 1, b"{}") == ref


def test_signature_header_requires_a_secret() -> None:
    with pytest.raises(ValueError):
        signature_header([], "m", 1, b"{}")


# --- Retry policy.


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (None, Outcome.RETRY),
        (408, Outcome.RETRY),
        (429, Outcome.RETRY),
        (500, Outcome.RETRY),
        (503, Outcome.RETRY),
        (599, Outcome.RETRY),
        (200, Outcome.SUCCESS),
        (204, Outcome.SUCCESS),
        (400, Outcome.FAIL),
        (401, Outcome.FAIL),
        (404, Outcome.FAIL),
        (410, Outcome.FAIL),
        (301, Outcome.FAIL),
    ],
)
def test_classify(status: int | None, outcome: Outcome) -> None:
    assert classify(status) is outcome
    assert RetryPolicy.should_retry(status) is (outcome is Outcome.RETRY)


def test_backoff_without_jitter_is_exponential_and_capped() -> None:
    policy = RetryPolicy(jitter="none")
    delays = [policy.next_delay(n).total_seconds() for n in range(1, 12)]
    assert delays == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600]
    assert policy.next_delay(10_000) == timedelta(minutes=10)  # no float overflow


def test_full_jitter_is_deterministic_and_bounded() -> None:
    a = RetryPolicy(rng=random.Random(42))
    b = RetryPolicy(rng=random.Random(42))
    seq_a = [a.next_delay(n) for n in range(1, 15)]
    assert seq_a == [b.next_delay(n) for n in range(1, 15)]
    for n, d in enumerate(seq_a, start=1):
        assert timedelta(0) <= d <= a.backoff_ceiling(n)
    assert len(set(seq_a)) > 1


def test_retry_after_seconds_is_honoured_without_jitter() -> None:
    policy = RetryPolicy(rng=random.Random(1))
    assert policy.next_delay(1, retry_after="120") == timedelta(seconds=120)
    # Longer than max_delay is still honoured; only the horizon caps it.
    assert policy.next_delay(1, retry_after="7200") == timedelta(hours=2)
    assert policy.next_delay(1, retry_after="999999999999999999999") == timedelta(hours=24)


def test_retry_after_http_date() -> None:
    policy = RetryPolicy(jitter="none")
    now = datetime(2025, 10, 21, 7, 28, 0, tzinfo=UTC)
    got = policy.next_delay(3, retry_after="Tue, 21 Oct 2025 07:33:00 GMT", now=now)
    assert got == timedelta(minutes=5)
    past = policy.next_delay(3, retry_after="Tue, 21 Oct 2025 07:00:00 GMT", now=now)
    assert past == timedelta(0)
    far = policy.next_delay(3, retry_after="Fri, 31 Oct 2025 00:00:00 GMT", now=now)
    assert far == timedelta(hours=24)


@pytest.mark.parametrize("junk", ["", "soon", "-5", "1.5", "Tue, 99 Foo 2025"])
def test_unparseable_retry_after_falls_back_to_backoff(junk: str) -> None:
    policy = RetryPolicy(jitter="none")
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert policy.next_delay(3, retry_after=junk, now=now) == timedelta(seconds=4)


def test_gave_up_after_horizon() -> None:
    policy = RetryPolicy()
    first = datetime(2025, 1, 1, tzinfo=UTC)
    assert not policy.gave_up(first, first + timedelta(hours=23, minutes=59))
    assert not policy.gave_up(first, first + timedelta(hours=24))
    assert policy.gave_up(first, first + timedelta(hours=24, seconds=1))


def test_invalid_policy_and_inputs() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(factor=0.5)
    with pytest.raises(ValueError):
        RetryPolicy(max_delay=timedelta(0))
    with pytest.raises(ValueError):
        RetryPolicy().next_delay(0)
    with pytest.raises(ValueError):
        RetryPolicy().gave_up(datetime(2025, 1, 1), datetime(2025, 1, 2, tzinfo=UTC))
