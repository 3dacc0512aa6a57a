"""Service settings from environment variables, one style for every service.

Every variable is prefixed ``GRIDGOV_`` (e.g. ``GRIDGOV_DATABASE_URL``). A service subclasses
:class:`ServiceSettings` to add its own fields and sets ``service_name``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# The repository root in a checkout; ``var/`` beside it holds the embedded default's SQLite files.
VAR_DIR = Path.cwd() / "var"

DEV_SIGNING_KEY = "gridgov-embedded-dev-key-change-me-in-production"


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRIDGOV_", extra="ignore")

    service_name: str = "gridgov"
    # Empty means the embedded default: a SQLite file under var/<service>.db.
    database_url: str = ""
    # Create tables on start (embedded default, tests); production runs Alembic migrations instead.
    create_schema: bool = True
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # Topic partitions when the service creates a missing topic (production creates them ahead).
    topic_partitions: int = 3
    topic_replication_factor: int = 1

    # Auth: HS256 with a local key by default; RS256 via a JWKS URL in production.
    jwt_signing_key: SecretStr = SecretStr(DEV_SIGNING_KEY)
    jwt_jwks_url: str = ""
    jwt_issuer: str = "gridgov"
    jwt_audience: str = "gridgov"
    # Presented by this service when it calls another (empty: sign one with the local key).
    service_token: SecretStr = SecretStr("")

    # Outbox relay and inbox consumer tuning.
    outbox_poll_seconds: float = 0.5
    outbox_batch_size: int = 500
    # How often the relay checks that the broker still holds what it wrote (0: only after an
    # outage); see outbox.py.
    outbox_audit_seconds: float = 15.0
    # What the relay sends again of a topic the broker lost: its events of this many seconds.
    outbox_replay_seconds: float = 3600.0
    consumer_max_attempts: int = 5
    # How often a consumer reads back the last record it handled on each partition, to notice
    # a broker that came back without it and read the partition again (0: never); inbox.py.
    inbox_audit_seconds: float = 15.0
    idempotency_ttl_hours: int = 48
    # Writes (POST/PUT/PATCH/DELETE) each caller may make per window, counted per replica in
    # memory unless a shared store is set (see ratelimit.py); 0 disables the limit. Generous
    # for people and devices (an offline phone may upload its whole queue at once); bulk
    # callers hold an exempt role.
    rate_limit_writes: int = 600
    rate_limit_window_seconds: int = 60
    rate_limit_exempt_roles: list[str] = ["service"]
    rate_limit_storage_url: str = "memory://"
    # Request bodies past these sizes are refused with 413 before they are read: JSON (a
    # boundary import of a whole street fits) and multipart uploads (services that take
    # photos raise it).
    max_body_bytes: int = 8 * 1024 * 1024
    max_upload_bytes: int = 8 * 1024 * 1024
    log_level: str = "INFO"
    log_json: bool = True
    # FastAPI's built-in OpenTelemetry instrumentation (traces, metrics, logs to the globally
    # configured OTel providers). Off unless a collector is set up: the platform's own metrics
    # are Prometheus, and the per-request check alone costs more than a grid lookup.
    otel_enabled: bool = False

    # Other services, for the synchronous calls DESIGN.md allows.
    grid_svc_url: str = "http://127.0.0.1:8101"
    grid_svc_timeout_seconds: float = 5.0

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{VAR_DIR / (self.service_name + '.db')}"
