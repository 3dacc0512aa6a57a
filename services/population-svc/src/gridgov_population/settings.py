"""Settings of population-svc (environment variables prefixed ``GRIDGOV_``).

The PII keys have embedded development defaults so the embedded run works out of the box;
production MUST set ``GRIDGOV_PII_KEYS``, ``GRIDGOV_PII_ACTIVE_KEY`` and
``GRIDGOV_BLIND_INDEX_KEY`` from a secret store (never the database).
"""

from __future__ import annotations

from functools import cached_property

from pydantic import SecretStr

from gridgov_common.settings import ServiceSettings

from .pii import BlindIndex, FieldCipher

# Development keys only (32 bytes each, base64). Public in the repository: never use in production.
DEV_PII_KEYS = "dev1:ZGV2LW9ubHktcGlpLWtleS1ub3QtZm9yLXByb2R1Y3Q="
DEV_BLIND_INDEX_KEY = "ZGV2LW9ubHktYmxpbmQtaW5kZXgta2V5LW5vdC1wcm9k"


class Settings(ServiceSettings):
    service_name: str = "population-svc"

    # Key ring "<id>:<base64 32 bytes>,<id>:<...>"; the active key encrypts, all decrypt.
    pii_keys: SecretStr = SecretStr(DEV_PII_KEYS)
    pii_active_key: str = "dev1"
    # HMAC key of the blind index (>= 32 bytes, base64), held outside the database.
    blind_index_key: SecretStr = SecretStr(DEV_BLIND_INDEX_KEY)
    # Roles that may see whole ID/phone numbers (with a stated purpose, audited).
    unmask_roles: list[str] = ["admin", "population_officer", "registrar"]
    # Fire-safety minimum floor area per registered occupant (m²).
    overcrowding_min_m2: float = 3.0
    # Anti-fishing: most results one person search returns.
    search_max_results: int = 20
    # Residence permit reminders: publish permit.expiring this many days before the due date.
    permit_reminder_days: int = 30
    permit_scan_seconds: float = 300.0
    # Staffing norm: one coordinator per this many floating residents.
    residents_per_coordinator: int = 500

    @cached_property
    def cipher(self) -> FieldCipher:
        return FieldCipher.from_setting(self.pii_keys.get_secret_value(), self.pii_active_key)

    @cached_property
    def blind_index(self) -> BlindIndex:
        return BlindIndex.from_setting(self.blind_index_key.get_secret_value())
