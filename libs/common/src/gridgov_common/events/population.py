"""Payloads on ``population.v1`` (published by population-svc, keyed by grid code)."""
