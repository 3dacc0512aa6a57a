"""The CloudEvents 1.0 envelope (JSON structured mode) and the registry of typed payloads.

Every event type names its topic and its pydantic payload model; producer and consumers share
that one definition, and each payload has a JSON Schema (``gridgov events schemas``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, TypeVar

import uuid_utils
from pydantic import BaseModel, ConfigDict, Field

GRID_TOPIC = "grid.v1"
INSPECTION_TOPIC = "inspection.v1"
POPULATION_TOPIC = "population.v1"
NOTIFY_TOPIC = "notify.v1"
TOPICS = (GRID_TOPIC, INSPECTION_TOPIC, POPULATION_TOPIC, NOTIFY_TOPIC)
TYPE_PREFIX = "gridgov."


def dlq_topic(topic: str, group: str) -> str:
    return f"{topic}.dlq.{group}"


def new_event_id() -> str:
    # UUIDv7: unique and time ordered, as DESIGN.md asks of event ids.
    return str(uuid_utils.uuid7())


class CloudEvent(BaseModel):
    model_config = ConfigDict(extra="allow")

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(min_length=1, max_length=64)
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    time: datetime
    subject: str | None = None
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str | None = None
    gridcode: str | None = Field(default=None, description="The grid the fact belongs to")
    data: dict[str, Any]

    @property
    def key(self) -> str:
        """Message key: the grid code where there is one (keeps a grid's facts in order)."""
        return self.gridcode or self.subject or self.id


class EventPayload(BaseModel):
    """Base of every payload. Consumers ignore unknown fields, so adding one is compatible."""

    model_config = ConfigDict(extra="ignore")
    event_type: ClassVar[str]
    topic: ClassVar[str]


P = TypeVar("P", bound=type[EventPayload])


@dataclass(frozen=True)
class EventSpec:
    name: str
    topic: str
    payload: type[EventPayload]


REGISTRY: dict[str, EventSpec] = {}


def event(type_name: str, topic: str) -> Callable[[P], P]:
    """Class decorator registering a payload model under its CloudEvents type."""
    full = type_name if type_name.startswith(TYPE_PREFIX) else TYPE_PREFIX + type_name

    def register(cls: P) -> P:
        if full in REGISTRY:
            raise ValueError(f"event type {full} registered twice")
        cls.event_type = full
        cls.topic = topic
        REGISTRY[full] = EventSpec(full, topic, cls)
        return cls

    return register


def make_event(
    payload: EventPayload,
    *,
    source: str,
    subject: str | None,
    gridcode: str | None = None,
    time: datetime | None = None,
) -> CloudEvent:
    return CloudEvent(
        id=new_event_id(),
        source=source,
        type=payload.event_type,
        time=time or datetime.now(UTC),
        subject=subject,
        gridcode=gridcode,
        dataschema=f"urn:gridgov:schema:{payload.event_type}",
        data=payload.model_dump(mode="json"),
    )


class UnknownEventType(LookupError):
    pass


def parse_payload(evt: CloudEvent) -> EventPayload:
    spec = REGISTRY.get(evt.type)
    if spec is None:
        raise UnknownEventType(evt.type)
    return spec.payload.model_validate(evt.data)


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema of every payload plus the envelope, for consumers outside the project."""
    schemas = {"envelope": CloudEvent.model_json_schema()}
    for name, spec in sorted(REGISTRY.items()):
        schema = spec.payload.model_json_schema()
        schema["x-topic"] = spec.topic
        schemas[name] = schema
    return schemas
