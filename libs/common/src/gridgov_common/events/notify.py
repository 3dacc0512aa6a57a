"""Payloads on ``notify.v1`` (published by notify-svc, keyed by grid code)."""
