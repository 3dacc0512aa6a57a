"""Grid members (网格员): assignment, hand-over, and the one-leader rule."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gridgov_common.app import ServiceContext
from gridgov_common.auth import Principal
from gridgov_common.db import region_filter, utcnow
from gridgov_common.errors import conflict, invalid, not_found
from gridgov_common.events.grid import MemberAssigned, MemberRemoved

from .models import GridMember, Region
from .regions import require_grid
from .schemas import LeaderGap, MemberCreate, MemberOut


def member_out(m: GridMember, today: date | None = None) -> MemberOut:
    today = today or date.today()
    active = m.ended_at is None and (m.valid_to is None or m.valid_to >= today)
    return MemberOut(
        id=m.id,
        grid_code=m.grid_code,
        name=m.name,
        role=m.role,  # type: ignore[arg-type]
        phone=m.phone,
        email=m.email,
        valid_from=m.valid_from,
        valid_to=m.valid_to,
        active=active,
    )


def _payload(m: GridMember) -> dict[str, object]:
    return dict(
        member_id=m.id,
        grid_code=m.grid_code,
        name=m.name,
        role=m.role,
        valid_from=m.valid_from,
        valid_to=m.valid_to,
    )


async def _active_leader(session: AsyncSession, grid_code: str) -> GridMember | None:
    return (
        await session.scalars(
            select(GridMember).where(
                GridMember.grid_code == grid_code,
                GridMember.role == "leader",
                GridMember.ended_at.is_(None),
            )
        )
    ).first()


async def _end(session: AsyncSession, ctx: ServiceContext, member: GridMember) -> None:
    member.ended_at = utcnow()
    member.valid_to = min(member.valid_to or date.today(), date.today())
    await ctx.publish(
        session,
        MemberRemoved(**_payload(member)),  # type: ignore[arg-type]
        subject=member.id,
        gridcode=member.grid_code,
    )


async def assign(
    ctx: ServiceContext, principal: Principal, grid_code: str, body: MemberCreate
) -> MemberOut:
    principal.ensure_covers(grid_code)
    async with ctx.db.transaction() as session:
        grid = await session.get(Region, grid_code)
        if grid is None:
            raise not_found("grid", grid_code)
        require_grid(grid)
        if grid.status != "active":
            raise conflict("region-retired", f"grid {grid_code} is retired")
        if body.replaces:
            old = await session.get(GridMember, body.replaces)
            if old is None or old.grid_code != grid_code or old.ended_at is not None:
                raise invalid(
                    "unknown-member",
                    f"replaces: {body.replaces} is not an active member of {grid_code}",
                )
            await _end(session, ctx, old)
            await session.flush()
        if body.role == "leader":
            current = await _active_leader(session, grid_code)
            if current is not None:
                raise conflict(
                    "leader-exists",
                    f"grid {grid_code} already has an active leader ({current.name}, "
                    f"member {current.id}); pass replaces={current.id} to hand over",
                    current_leader=current.id,
                )
        member = GridMember(
            id=str(uuid.uuid4()),
            grid_code=grid_code,
            name=body.name,
            role=body.role,
            phone=body.phone,
            email=body.email,
            valid_from=body.valid_from,
            valid_to=body.valid_to,
        )
        session.add(member)
        await session.flush()
        await ctx.publish(
            session,
            MemberAssigned(**_payload(member)),  # type: ignore[arg-type]
            subject=member.id,
            gridcode=grid_code,
        )
    return member_out(member)


async def remove(ctx: ServiceContext, principal: Principal, member_id: str) -> MemberOut:
    async with ctx.db.transaction() as session:
        member = await session.get(GridMember, member_id)
        # A member outside the caller's scopes is hidden (same answer as an unknown id): the
        # caller cannot list that grid's members either.
        if member is None or member.ended_at is not None or not principal.covers(member.grid_code):
            raise not_found("active member", member_id)
        await _end(session, ctx, member)
    return member_out(member)


async def list_for_grid(
    ctx: ServiceContext, principal: Principal, grid_code: str, include_ended: bool = False
) -> list[MemberOut]:
    # The grid itself is public (every role reads the hierarchy); its members' names, phones
    # and e-mail addresses are personal data, for callers whose scopes cover the grid.
    principal.ensure_covers(grid_code)
    async with ctx.db.sessions() as session:
        if await session.get(Region, grid_code) is None:
            raise not_found("grid", grid_code)
        query = select(GridMember).where(GridMember.grid_code == grid_code)
        if not include_ended:
            query = query.where(GridMember.ended_at.is_(None))
        rows = (await session.scalars(query.order_by(GridMember.created_at))).all()
    return [member_out(m) for m in rows]


async def leader_gaps(ctx: ServiceContext, prefixes: list[str] | None) -> list[LeaderGap]:
    """Active grids without an active leader: someone must be in charge of every grid.

    ``prefixes`` as from ``Principal.visible_prefixes`` (None: everywhere)."""
    async with ctx.db.sessions() as session:
        has_leader = select(GridMember.grid_code).where(
            GridMember.role == "leader", GridMember.ended_at.is_(None)
        )
        query = select(Region).where(
            Region.level == "grid",
            Region.status == "active",
            Region.code.not_in(has_leader),
            region_filter(Region.code, prefixes),
        )
        rows = (await session.scalars(query.order_by(Region.code))).all()
    return [LeaderGap(code=r.code, name=r.name, community_code=r.parent_code) for r in rows]
