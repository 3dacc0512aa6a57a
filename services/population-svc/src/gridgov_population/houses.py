"""Rental houses (出租屋): allocated house codes, rooms, and overcrowding detection."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gridgov_common.app import ServiceContext
from gridgov_common.auth import Principal
from gridgov_common.db import utcnow
from gridgov_common.errors import invalid, not_found
from gridgov_common.events.population import HouseOvercrowded, HouseOvercrowdingCleared

from .access import ensure_visible, next_number
from .citizen_id import CitizenIdError, parse_citizen_id
from .models import House, OvercrowdingState, Registration, Room, new_id
from .pii import mask_citizen_id, mask_phone
from .schemas import HouseCreate, HouseOut, HouseUpdate, RoomIn, RoomOut
from .settings import Settings

HOUSE_UNIT = "house"


def house_code(community_code: str, serial: int) -> str:
    """Community code (12 digits) + a 6-digit serial: unique, never reused."""
    if serial >= 1_000_000:
        raise invalid("house-codes-exhausted", f"community {community_code} has no codes left")
    return f"{community_code}{serial:06d}"


@dataclass(frozen=True)
class Crowding:
    overcrowded: bool
    area_per_occupant: float | None


def assess(area_m2: float, occupants: int, minimum_m2: float) -> Crowding:
    """Overcrowded when the floor area per registered occupant is below the minimum."""
    if occupants <= 0:
        return Crowding(False, None)
    per = area_m2 / occupants
    return Crowding(per < minimum_m2, round(per, 2))


async def create(ctx: ServiceContext, principal: Principal, body: HouseCreate) -> dict[str, Any]:
    settings: Settings = ctx.settings  # type: ignore[assignment]
    principal.ensure_covers(body.community_code)
    numbers = [r.number for r in body.rooms]
    if len(set(numbers)) != len(numbers):
        raise invalid("duplicate-room-number", "room numbers must be unique within a house")
    if sum(r.area_m2 for r in body.rooms) > body.floor_area_m2 + 1e-6:
        raise invalid("rooms-exceed-floor-area", "rooms add up to more than the floor area")
    owner_number = None
    if body.owner_id_number:
        try:
            owner_number = parse_citizen_id(body.owner_id_number).number
        except CitizenIdError as exc:
            raise invalid("invalid-citizen-id", f"owner_id_number: {exc}") from None
    # Resolve before opening the transaction: an outage writes nothing.
    located = await ctx.grid.locate(body.lon, body.lat, body.crs)
    if not located.grid_code.startswith(body.community_code):
        raise invalid(
            "location-outside-community",
            f"the location lies in grid {located.grid_code}, not in community "
            f"{body.community_code}",
        )
    async with ctx.db.transaction() as session:
        serial = await next_number(session, f"house:{body.community_code}")
        house = House(
            id=new_id(),
            house_code=house_code(body.community_code, serial),
            community_code=body.community_code,
            grid_code=located.grid_code,
            address=body.address,
            lon=located.lon,
            lat=located.lat,
            owner_name=body.owner_name,
            floor_area_m2=body.floor_area_m2,
            floor=body.floor,
            layout=body.layout,
            use=body.use,
            rental_status=body.rental_status,
            status="active",
        )
        if owner_number:
            house.owner_id_enc = settings.cipher.encrypt(owner_number, f"house:{house.id}.owner_id")
            house.owner_id_bidx = settings.blind_index.index("citizen_id", owner_number)
            house.owner_id_masked = mask_citizen_id(owner_number)
        if body.owner_phone:
            phone = settings.blind_index.normalise("phone", body.owner_phone)
            house.owner_phone_enc = settings.cipher.encrypt(phone, f"house:{house.id}.owner_phone")
            house.owner_phone_masked = mask_phone(phone)
        session.add(house)
        await session.flush()
        for room in body.rooms:
            session.add(Room(house_id=house.id, number=room.number, area_m2=room.area_m2))
        await session.flush()
        return await to_out(session, house)


async def update(
    ctx: ServiceContext, principal: Principal, house_id: str, body: HouseUpdate
) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        house = await get_visible(session, principal, house_id)
        await lock(session, [house.id])
        if body.floor_area_m2 is not None:
            house.floor_area_m2 = body.floor_area_m2
        if body.use is not None:
            house.use = body.use
        if body.rental_status is not None:
            house.rental_status = body.rental_status
        if body.rooms:
            await upsert_rooms(session, house, body.rooms)
        await session.flush()
        await reassess(ctx, session, house)
        return await to_out(session, house)


async def upsert_rooms(session: AsyncSession, house: House, rooms: list[RoomIn]) -> None:
    existing = {
        r.number: r
        for r in (await session.scalars(select(Room).where(Room.house_id == house.id))).all()
    }
    for item in rooms:
        if item.number in existing:
            existing[item.number].area_m2 = item.area_m2
        else:
            session.add(Room(house_id=house.id, number=item.number, area_m2=item.area_m2))


async def get_visible(session: AsyncSession, principal: Principal, house_id: str) -> House:
    house = await session.get(House, house_id)
    if house is None:
        raise not_found("house", house_id)
    ensure_visible(principal, house.grid_code, "house", house_id)
    return house


async def occupancy(session: AsyncSession, house_id: str) -> tuple[int, dict[str, int]]:
    rows = (
        await session.execute(
            select(Registration.room_id, func.count())
            .where(Registration.house_id == house_id, Registration.active.is_(True))
            .group_by(Registration.room_id)
        )
    ).all()
    per_room = {room_id: n for room_id, n in rows if room_id}
    return sum(n for _, n in rows), per_room


async def lock(session: AsyncSession, house_ids: Iterable[str]) -> None:
    """Row-lock houses, in one fixed order, before anything that refers to them is written.

    A registration's or room's foreign key takes a KEY SHARE lock on its house; two
    transactions holding one that both then ask for the row lock of :func:`reassess`
    deadlock on PostgreSQL (SQLite writes are serial anyway).
    """
    for house_id in sorted(set(house_ids)):
        await session.execute(select(House.id).where(House.id == house_id).with_for_update())


async def reassess(ctx: ServiceContext, session: AsyncSession, house: House) -> None:
    """Recompute overcrowding of the house (if a dormitory/mixed) and each room; publish
    exactly one event per transition (state kept in ``overcrowding_states``)."""
    settings: Settings = ctx.settings  # type: ignore[assignment]
    minimum = settings.overcrowding_min_m2
    # Serialise reassessments of one house, so two concurrent arrivals cannot both publish
    # the same transition (a no-op where the caller locked it already).
    await lock(session, [house.id])
    total, per_room = await occupancy(session, house.id)
    rooms = (await session.scalars(select(Room).where(Room.house_id == house.id))).all()
    units: list[tuple[str, str | None, float, int]] = []
    if house.use in ("collective_dormitory", "mixed"):
        units.append((HOUSE_UNIT, None, house.floor_area_m2, total))
    for room in rooms:
        units.append((room.id, room.number, room.area_m2, per_room.get(room.id, 0)))
    states = {
        s.unit: s
        for s in (
            await session.scalars(
                select(OvercrowdingState).where(OvercrowdingState.house_id == house.id)
            )
        ).all()
    }
    for unit, number, area, occupants in units:
        crowding = assess(area, occupants, minimum)
        state = states.get(unit)
        if state is None:
            state = OvercrowdingState(house_id=house.id, unit=unit, overcrowded=False, occupants=0)
            session.add(state)
        state.occupants = occupants
        if crowding.overcrowded == state.overcrowded:
            continue
        state.overcrowded = crowding.overcrowded
        state.changed_at = now = utcnow()
        if crowding.overcrowded:
            payload: Any = HouseOvercrowded(
                house_id=house.id,
                house_code=house.house_code,
                grid_code=house.grid_code,
                address=house.address,
                room_number=number,
                use=house.use,
                floor_area_m2=area,
                occupants=occupants,
                area_per_occupant_m2=crowding.area_per_occupant or 0.0,
                minimum_m2=minimum,
                detected_at=now,
            )
        else:
            payload = HouseOvercrowdingCleared(
                house_id=house.id,
                house_code=house.house_code,
                grid_code=house.grid_code,
                room_number=number,
                occupants=occupants,
                area_per_occupant_m2=crowding.area_per_occupant,
                cleared_at=now,
            )
        await ctx.publish(session, payload, subject=house.id, gridcode=house.grid_code)
    # A house that stopped being a dormitory: clear its whole-house state if it was set.
    if house.use == "residential" and HOUSE_UNIT in states and states[HOUSE_UNIT].overcrowded:
        states[HOUSE_UNIT].overcrowded = False
        await ctx.publish(
            session,
            HouseOvercrowdingCleared(
                house_id=house.id,
                house_code=house.house_code,
                grid_code=house.grid_code,
                occupants=total,
                area_per_occupant_m2=assess(house.floor_area_m2, total, minimum).area_per_occupant,
                cleared_at=utcnow(),
            ),
            subject=house.id,
            gridcode=house.grid_code,
        )


async def to_out(session: AsyncSession, house: House) -> dict[str, Any]:
    rooms = (
        await session.scalars(select(Room).where(Room.house_id == house.id).order_by(Room.number))
    ).all()
    total, per_room = await occupancy(session, house.id)
    crowded = (
        await session.scalars(
            select(OvercrowdingState.unit).where(
                OvercrowdingState.house_id == house.id, OvercrowdingState.overcrowded.is_(True)
            )
        )
    ).all()
    room_numbers = {r.id: r.number for r in rooms}
    return HouseOut(
        id=house.id,
        house_code=house.house_code,
        community_code=house.community_code,
        grid_code=house.grid_code,
        address=house.address,
        location=(house.lon, house.lat),
        owner_name=house.owner_name,
        owner_id_number=house.owner_id_masked,
        owner_phone=house.owner_phone_masked,
        floor_area_m2=house.floor_area_m2,
        floor=house.floor,
        layout=house.layout,
        use=house.use,
        rental_status=house.rental_status,
        status=house.status,
        rooms=[
            RoomOut(id=r.id, number=r.number, area_m2=r.area_m2, occupants=per_room.get(r.id, 0))
            for r in rooms
        ],
        occupants=total,
        overcrowded_units=sorted(room_numbers.get(u, u) for u in crowded),
    ).model_dump(mode="json")
