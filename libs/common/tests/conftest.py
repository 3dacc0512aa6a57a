"""A small service built only from libs/common, to test the shared mechanisms end to end."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import String, Text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from gridgov_common.app import Ctx, ServiceDefinition, create_app
from gridgov_common.auth import CurrentPrincipal
from gridgov_common.db import PlatformTables
from gridgov_common.errors import Problem
from gridgov_common.events import CloudEvent, EventPayload, event
from gridgov_common.settings import ServiceSettings
from gridgov_common.testing import TEST_PARTITIONS, Broker, RunningService, serve

TEST_TOPIC = "commontest.v1"


@event("commontest.note.recorded", TEST_TOPIC)
class NoteRecorded(EventPayload):
    note_id: str
    text: str


class Base(DeclarativeBase):
    pass


tables = PlatformTables(Base.metadata)


class Note(Base):
    __tablename__ = "notes"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)


class ReceivedNote(Base):
    __tablename__ = "received_notes"
    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)


class NoteIn(BaseModel):
    id: str = Field(min_length=1, max_length=64)
    key: str = Field(default="k", max_length=64)
    text: str = Field(max_length=1000)
    fail_after_recording: bool = False


router = APIRouter(prefix="/v1")


@router.post("/notes", status_code=201)
async def create_note(body: NoteIn, ctx: Ctx, principal: CurrentPrincipal) -> dict[str, str]:
    principal.ensure_covers("440306001")
    async with ctx.db.transaction() as session:
        session.add(Note(id=body.id, key=body.key, text=body.text))
        await ctx.publish(
            session,
            NoteRecorded(note_id=body.id, text=body.text),
            subject=body.id,
            gridcode=body.key,
        )
        if body.fail_after_recording:
            raise Problem(409, "refused", "refused after recording, so nothing may be published")
    return {"id": body.id}


@router.get("/notes/{note_id}")
async def read_note(note_id: str, ctx: Ctx, principal: CurrentPrincipal) -> dict[str, str]:
    async with ctx.db.sessions() as session:
        note = await session.get(Note, note_id)
    if note is None:
        raise Problem(404, "not-found", f"note {note_id} does not exist")
    return {"id": note.id, "text": note.text}


async def on_note(session: AsyncSession, evt: CloudEvent, payload: NoteRecorded) -> None:
    if payload.text == "poison":
        raise RuntimeError("this note can never be handled")
    session.add(ReceivedNote(event_id=evt.id, key=evt.key, text=payload.text))


@pytest.fixture
def broker(kafka_broker: Broker) -> Broker:
    return kafka_broker


@pytest.fixture
def settings(broker: Broker, database_url: str) -> ServiceSettings:
    return ServiceSettings(
        service_name="commontest",
        database_url=database_url,
        kafka_bootstrap_servers=broker.bootstrap,
        outbox_poll_seconds=0.1,
        consumer_max_attempts=2,
        log_json=False,
        topic_partitions=TEST_PARTITIONS,
    )


def definition(settings: ServiceSettings) -> ServiceDefinition:
    return ServiceDefinition(
        settings=settings,
        metadata=Base.metadata,
        tables=tables,
        routers=[router],
        title="common test",
        produces=[TEST_TOPIC],
        handlers={NoteRecorded.event_type: on_note},  # type: ignore[dict-item]
    )


@pytest.fixture
async def svc(settings: ServiceSettings) -> AsyncIterator[RunningService]:
    async with serve(create_app(definition(settings))) as running:
        yield running
