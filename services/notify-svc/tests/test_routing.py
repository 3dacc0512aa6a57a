"""Routing with rules and departments cached in memory: changes made anywhere are seen."""

from __future__ import annotations

from sqlalchemy import select

from gridgov_common.events import make_event
from gridgov_common.testing import token_for
from gridgov_notify.escalation import calendar_of
from gridgov_notify.models import Dispatch, UnroutedEvent
from gridgov_notify.routing import RoutingView, route_events

from .conftest import GRID, hazard_payload, make_department

ADMIN = token_for(roles=["admin"], scopes=["440306"])


async def test_cached_routing_sees_changes_made_on_another_replica(launch):
    async with (
        launch("notify") as a,
        launch("notify") as b,
        b.client(ADMIN) as other_replica,
    ):
        view = RoutingView()
        calendar = calendar_of(a.ctx.settings)

        async def route(hazard_id: str) -> list[str]:
            """Route one hazard through replica a's cached view; the departments it reached."""
            evt = make_event(
                hazard_payload(GRID, "major", hazard_id),
                source="test",
                subject=hazard_id,
                gridcode=GRID,
            )
            async with a.ctx.db.transaction() as session:
                await route_events(session, [evt], calendar, view)
                # routing the same event again (a redelivery) adds nothing
                await route_events(session, [evt, evt], calendar, view)
            async with a.ctx.db.sessions() as session:
                rows = await session.scalars(
                    select(Dispatch.department_id).where(Dispatch.source_event_id == evt.id)
                )
                return sorted(rows.all())

        await make_department(other_replica, "police-a", "police_station", ["440306001"])
        assert await route("hz-1") == ["police-a"]
        await make_department(other_replica, "fire-a", "fire_brigade", ["440306001"])
        assert await route("hz-2") == ["fire-a", "police-a"]
        r = await other_replica.patch("/v1/departments/police-a", json={"active": False})
        assert r.status_code == 200
        assert await route("hz-3") == ["fire-a"]

        r = await other_replica.get("/v1/routing-rules", params={"event_type": GRID_EVENT})
        rule = next(x for x in r.json()["items"] if x["rule_id"] == "hazard-major")
        body = {k: rule[k] for k in RULE_FIELDS} | {"active": False}
        r = await other_replica.put("/v1/routing-rules/hazard-major", json=body)
        assert r.status_code == 200
        assert await route("hz-4") == []
        async with a.ctx.db.sessions() as session:
            unrouted = (await session.scalars(select(UnroutedEvent))).all()
        assert [u.reason for u in unrouted] == ["no routing rule matches"]


GRID_EVENT = "gridgov.inspection.hazard.reported"
RULE_FIELDS = (
    "name",
    "event_type",
    "match",
    "grid_classes",
    "department_types",
    "ack_sla",
    "feedback_sla",
)
