"""Payloads on ``inspection.v1`` (published by inspection-svc, keyed by grid code)."""
