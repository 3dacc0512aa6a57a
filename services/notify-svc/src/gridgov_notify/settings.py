from datetime import date

from gridgov_common.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "notify-svc"

    # Webhook delivery.
    webhook_timeout_seconds: float = 10.0
    webhook_retry_base_seconds: float = 2.0
    webhook_retry_max_seconds: float = 600.0
    webhook_horizon_hours: float = 24.0
    delivery_poll_seconds: float = 0.2
    delivery_claim_seconds: float = 60.0
    delivery_concurrency: int = 32
    # Keep-alive connections per receiving origin (scheme://host:port).
    delivery_connections_per_origin: int = 8
    # How long attempt results gather before they are written together (delays only the
    # recorded "delivered" state, not the webhook).
    delivery_record_linger_seconds: float = 0.02

    # Escalation worker.
    escalation_poll_seconds: float = 5.0

    # SSE: how often a stream looks for new dispatch events.
    sse_poll_seconds: float = 0.25

    # Working calendar overrides (data, on top of the chinese_calendar library).
    calendar_extra_holidays: list[date] = []
    calendar_extra_workdays: list[date] = []
