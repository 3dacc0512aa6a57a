"""量化考评: per-inspector evaluation, spot checks with agreement rate, region closure rates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from gridgov_inspection import status
from gridgov_inspection.models import Checkpoint, Hazard

from .conftest import (
    ADMIN,
    DEPARTMENT,
    INSPECTOR,
    INSPECTOR2,
    answers_for,
    make_site,
    submission,
    submit,
)


def _period():
    now = datetime.now(UTC)
    return {
        "since": (now - timedelta(days=30)).isoformat(),
        "until": (now + timedelta(days=30)).isoformat(),
    }


async def test_inspector_evaluation_and_spot_checks(insp, city):
    a = await make_site(insp, city)
    b = await make_site(insp, city)
    c = await make_site(insp, city, grid_code=city.grid_east)
    missed = await make_site(insp, city)
    ok = await answers_for(insp, "restaurant")
    assert (await submit(insp, submission(a, ok))).status_code == 201
    assert (await submit(insp, submission(b, ok))).status_code == 201
    r = await submit(insp, submission(c, await answers_for(insp, "restaurant", {"wiring"})))
    hid = r.json()["hazards_opened"][0]
    # rejections: one presence, one photo
    assert (await submit(insp, submission(a, ok, tag_uid="04FFFFFFFFFFFF"))).status_code == 422
    assert (await submit(insp, submission(a, ok), [("x.jpg", b"plain text")])).status_code == 415
    # a miss attributed to the assigned inspector
    async with insp.ctx.db.transaction() as s:
        await s.execute(
            update(Checkpoint)
            .where(Checkpoint.id == missed.checkpoint["id"])
            .values(due_at=datetime.now(UTC) - timedelta(hours=1))
        )
    await status.sweep(insp.ctx)
    # rework: rectification reported, re-inspection still fails
    async with insp.client(DEPARTMENT) as http:
        await http.post(f"/v1/hazards/{hid}/rectification", json={"note": "fixed"})
    r = await submit(insp, submission(c, await answers_for(insp, "restaurant", {"wiring"})))
    assert r.json()["hazards_reopened"] == [hid]

    # spot checks: sample every passed inspection, assigned to the other inspector
    async with insp.client(ADMIN) as http:
        r = await http.post(
            "/v1/spot-checks/sample",
            json=_period()
            | {"inspectors": ["inspector-li", "inspector-wang"], "share": 1.0, "seed": 1},
        )
        assert r.status_code == 201, r.text
        checks = r.json()
        assert len(checks) == 2
        assert {x["assigned_inspector"] for x in checks} == {"inspector-wang"}
        r = await http.post(
            "/v1/spot-checks/sample",
            json=_period() | {"inspectors": ["inspector-li", "inspector-wang"], "share": 1.0},
        )
        assert r.json() == []  # nothing sampled twice
    by_cp = {x["checkpoint_id"]: x for x in checks}
    # the original inspector cannot do their own spot check
    sc_a = by_cp[a.checkpoint["id"]]
    r = await submit(insp, submission(a, ok, spot_check_id=sc_a["id"]))
    assert r.status_code == 403
    assert r.json()["type"] == "urn:gridgov:problem:spot-check-not-assigned"
    # wang agrees on a, disagrees on b (finds a failure)
    assert (
        await submit(insp, submission(a, ok, spot_check_id=sc_a["id"]), token=INSPECTOR2)
    ).status_code == 201
    sc_b = by_cp[b.checkpoint["id"]]
    r = await submit(
        insp,
        submission(
            b, await answers_for(insp, "restaurant", {"extinguishers"}), spot_check_id=sc_b["id"]
        ),
        token=INSPECTOR2,
    )
    assert r.status_code == 201, r.text
    async with insp.client(ADMIN) as http:
        done = (await http.get("/v1/spot-checks", params={"state": "done"})).json()["items"]
        assert {x["id"]: x["agreed"] for x in done} == {sc_a["id"]: True, sc_b["id"]: False}
        ev = (await http.get("/v1/evaluation/inspectors", params=_period())).json()["items"]
    li = next(x for x in ev if x["inspector"] == "inspector-li")
    assert li["inspected"] == 3 and li["on_time"] == 3 and li["missed"] == 1 and li["due"] == 4
    assert li["hazards_found"] == 1 and li["hazards_confirmed"] == 1
    assert li["rework"] == 1
    assert li["presence_rejections"] == 1 and li["photo_rejections"] == 1
    assert li["spot_checks"] == 2 and li["agreement_rate"] == 0.5
    wang = next(x for x in ev if x["inspector"] == "inspector-wang")
    assert wang["hazards_found"] == 1 and wang["inspected"] == 0  # spot checks aren't "due"


async def test_region_on_time_closure_and_rework_rates(insp, city):
    west = await make_site(insp, city)
    east = await make_site(insp, city, grid_code=city.grid_east)
    fail = await answers_for(insp, "restaurant", {"wiring"})
    hw = (await submit(insp, submission(west, fail))).json()["hazards_opened"][0]
    he = (await submit(insp, submission(east, fail))).json()["hazards_opened"][0]
    ok = await answers_for(insp, "restaurant")
    async with insp.client(DEPARTMENT) as http:
        await http.post(f"/v1/hazards/{hw}/rectification", json={"note": "fixed"})
    assert (await submit(insp, submission(west, ok))).json()["hazards_closed"] == [hw]
    # east: closed, but after its deadline
    async with insp.ctx.db.transaction() as s:
        await s.execute(
            update(Hazard)
            .where(Hazard.id == he)
            .values(deadline=datetime.now(UTC) - timedelta(hours=1))
        )
    assert (await submit(insp, submission(east, ok))).json()["hazards_closed"] == [he]
    async with insp.client(INSPECTOR) as http:
        rows = (await http.get("/v1/evaluation/regions", params=_period())).json()["items"]
        comm = (
            await http.get("/v1/evaluation/regions", params=_period() | {"level": "community"})
        ).json()["items"]
    by = {r["code"]: r for r in rows}
    assert by[city.grid_west]["on_time_closure_rate"] == 1.0
    assert by[city.grid_east]["on_time_closure_rate"] == 0.0
    assert by[city.grid_west]["rework_rate"] == 0.0
    assert comm == [
        {
            "code": city.community,
            "level": "community",
            "hazards_due": 2,
            "closed_on_time": 1,
            "hazards_reported": 2,
            "hazards_with_rework": 0,
            "on_time_closure_rate": 0.5,
            "rework_rate": 0.0,
        }
    ]
