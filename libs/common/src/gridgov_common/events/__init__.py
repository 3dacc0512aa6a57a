"""Event envelope, registry and the catalogue of payloads, one module per topic."""

from . import grid, inspection, notify, population
from .envelope import (
    GRID_TOPIC,
    INSPECTION_TOPIC,
    NOTIFY_TOPIC,
    POPULATION_TOPIC,
    REGISTRY,
    TOPICS,
    CloudEvent,
    EventPayload,
    EventSpec,
    UnknownEventType,
    dlq_topic,
    event,
    json_schemas,
    make_event,
    new_event_id,
    parse_payload,
)

__all__ = [
    "GRID_TOPIC",
    "INSPECTION_TOPIC",
    "NOTIFY_TOPIC",
    "POPULATION_TOPIC",
    "REGISTRY",
    "TOPICS",
    "CloudEvent",
    "EventPayload",
    "EventSpec",
    "UnknownEventType",
    "dlq_topic",
    "event",
    "grid",
    "inspection",
    "json_schemas",
    "make_event",
    "new_event_id",
    "notify",
    "parse_payload",
    "population",
]
