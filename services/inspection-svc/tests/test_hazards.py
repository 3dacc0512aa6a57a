"""Hazards: opened by a failed item, moved by notify.v1, closed only by a passing re-inspection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gridgov_common.events import NOTIFY_TOPIC, make_event
from gridgov_common.events.notify import DispatchStateChanged
from gridgov_common.testing import eventually

from .conftest import (
    ADMIN,
    DEPARTMENT,
    INSPECTOR,
    answers_for,
    make_site,
    outbox_events,
    submission,
    submit,
)


async def _notify(svc, hazard_id: str, to_state: str, feedback: str | None = None) -> None:
    payload = DispatchStateChanged(
        dispatch_id="d-1",
        case_id="c-1",
        source_event_id="e-1",
        source_event_type="gridgov.inspection.hazard.reported",
        source_subject=hazard_id,
        grid_code="440306001001001",
        department_id="fire",
        department_name="消防救援站",
        department_type="fire",
        from_state=None,
        to_state=to_state,  # type: ignore[arg-type]
        at=datetime.now(UTC),
        actor="officer-zhang",
        feedback_result=feedback,  # type: ignore[arg-type]
    )
    evt = make_event(payload, source="notify-svc", subject="d-1", gridcode="440306001001001")
    await svc.ctx.bus.publish(NOTIFY_TOPIC, evt.key, evt.model_dump_json().encode())


async def _hazard(svc, hazard_id):
    async with svc.client(ADMIN) as http:
        return (await http.get(f"/v1/hazards/{hazard_id}")).json()


async def _state_is(svc, hazard_id, state):
    async def check():
        h = await _hazard(svc, hazard_id)
        return h if h["state"] == state else None

    return await eventually(check, timeout=30)


async def test_closed_loop_with_rework(insp, city):
    site = await make_site(insp, city)
    cp_id = site.checkpoint["id"]
    failing = await answers_for(insp, "restaurant", fail={"extinguishers", "exits_clear"})
    r = await submit(insp, submission(site, failing))
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["passed"] is False and len(out["hazards_opened"]) == 2
    async with insp.client(ADMIN) as http:
        cp = (await http.get(f"/v1/checkpoints/{cp_id}")).json()
        listing = (await http.get(f"/v1/hazards?checkpoint_id={cp_id}")).json()["items"]
    assert cp["colour"] == "red" and cp["open_hazards"] == 2
    by_item = {h["item_code"]: h for h in listing}
    ext = by_item["extinguishers"]
    assert ext["severity"] == "general" and by_item["exits_clear"]["severity"] == "major"
    assert ext["state"] == "open" and ext["description"] == "灭火器过期"
    assert datetime.fromisoformat(ext["deadline"]) > datetime.now(UTC) + timedelta(days=2)
    reported = await outbox_events(insp, "hazard.reported")
    assert {e["subject"] for e in reported} == set(out["hazards_opened"])
    assert reported[0]["data"]["venue"]["venue_type"] == "restaurant"

    # notify.v1 moves it along.
    await _notify(insp, ext["id"], "pending")
    await _state_is(insp, ext["id"], "dispatched")
    await _notify(insp, ext["id"], "acknowledged")
    await _state_is(insp, ext["id"], "acknowledged")
    await _notify(insp, ext["id"], "feedback_received", "rectified")
    await _state_is(insp, ext["id"], "rectification_reported")

    # A re-inspection that still fails sends it back to open as rework; the other stays.
    again = await answers_for(insp, "restaurant", fail={"extinguishers", "exits_clear"})
    r = await submit(insp, submission(site, again))
    assert r.status_code == 201, r.text
    assert r.json()["is_reinspection"] is True
    assert r.json()["hazards_reopened"] == [ext["id"]] and r.json()["hazards_opened"] == []
    h = await _hazard(insp, ext["id"])
    assert h["state"] == "open" and h["rework_count"] == 1
    assert h["history"][-1]["rework"] is True

    # The venue reports the fix through a department; a passing re-inspection closes both.
    async with insp.client(DEPARTMENT) as http:
        r = await http.post(f"/v1/hazards/{ext['id']}/rectification", json={"note": "换新灭火器"})
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "rectification_reported"
        r = await http.post(f"/v1/hazards/{ext['id']}/rectification", json={"note": "again"})
        assert r.status_code == 409
    r = await submit(insp, submission(site, await answers_for(insp, "restaurant")))
    assert r.status_code == 201, r.text
    assert set(r.json()["hazards_closed"]) == set(out["hazards_opened"])
    h = await _hazard(insp, ext["id"])
    assert h["state"] == "closed" and h["outcome"] == "confirmed"
    exits = await _hazard(insp, by_item["exits_clear"]["id"])
    assert exits["outcome"] == "overturned"
    states = [(x["from_state"], x["to_state"]) for x in h["history"]]
    assert states == [
        (None, "open"),
        ("open", "dispatched"),
        ("dispatched", "acknowledged"),
        ("acknowledged", "rectification_reported"),
        ("rectification_reported", "open"),
        ("open", "rectification_reported"),
        ("rectification_reported", "closed"),
    ]
    assert all(x["actor"] and x["reason"] and x["at"] for x in h["history"])
    changed = [
        e for e in await outbox_events(insp, "hazard.state_changed") if e["subject"] == ext["id"]
    ]
    assert [e["data"]["to_state"] for e in changed] == [s for _, s in states]
    async with insp.client(INSPECTOR) as http:
        cp = (await http.get(f"/v1/checkpoints/{cp_id}")).json()
    assert cp["colour"] == "green" and cp["open_hazards"] == 0
    colours = [
        (e["data"]["from_colour"], e["data"]["to_colour"])
        for e in await outbox_events(insp, "checkpoint.status_changed")
    ]
    assert colours == [("green", "red"), ("red", "green")]


async def test_dispatch_events_for_other_sources_are_ignored(insp, city):
    site = await make_site(insp, city)
    r = await submit(insp, submission(site, await answers_for(insp, "restaurant", {"wiring"})))
    hid = r.json()["hazards_opened"][0]
    payload = DispatchStateChanged(
        dispatch_id="d-9",
        case_id="c-9",
        source_event_id="e-9",
        source_event_type="gridgov.population.house.overcrowded",
        source_subject=hid,
        grid_code=None,
        department_id="x",
        department_name="x",
        department_type="x",
        from_state=None,
        to_state="acknowledged",
        at=datetime.now(UTC),
    )
    evt = make_event(payload, source="notify-svc", subject="d-9")
    await insp.ctx.bus.publish(NOTIFY_TOPIC, evt.key, evt.model_dump_json().encode())
    await _notify(insp, hid, "delivered")
    await _state_is(insp, hid, "dispatched")  # the population event changed nothing before


async def test_overdue_hazard_is_marked_by_the_sweep(insp, city):
    from gridgov_inspection import status

    site = await make_site(insp, city)
    r = await submit(insp, submission(site, await answers_for(insp, "restaurant", {"wiring"})))
    hid = r.json()["hazards_opened"][0]
    result = await status.sweep(insp.ctx, now=datetime.now(UTC) + timedelta(days=10))
    assert result["overdue"] == 1
    h = await _hazard(insp, hid)
    assert h["state"] == "overdue" and h["was_overdue"] is True
    await _notify(insp, hid, "acknowledged")
    await _state_is(insp, hid, "acknowledged")
