"""Persistence models of inspection-svc."""

from __future__ import annotations

from gridgov_common.db import service_base

Base, tables = service_base()
