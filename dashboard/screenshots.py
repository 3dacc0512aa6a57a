"""Take the README's dashboard screenshots from a running ``make run`` (demo city).

``make screenshots`` (or ``.venv/bin/python dashboard/screenshots.py --out docs/screenshots``).
It drives Debian's Chromium headless through the page as a person would, over the demo city
that ``make run`` loaded, and reports one hazard through the API while the page is open so
the live feed shows the loop start.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx

from gridgov_common.auth import issue_token
from gridgov_common.demo.photos import gradient_photo
from gridgov_common.demo.venues import INSPECTORS
from gridgov_common.settings import ServiceSettings

DASHBOARD = "http://127.0.0.1:8100"
URLS = {
    "grid": "http://127.0.0.1:8101",
    "inspection": "http://127.0.0.1:8102",
    "population": "http://127.0.0.1:8103",
    "notify": "http://127.0.0.1:8104",
}
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def client(service: str, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=URLS[service], headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def live_hazard(rng: random.Random) -> None:
    """One hazard reported while the page is open, so the live feed shows the loop start."""
    settings = ServiceSettings()
    admin = issue_token(settings, subject="screens", roles=["admin"], scopes=["440306"])
    with client("inspection", admin) as http:
        green = [c for c in http.get("/v1/checkpoints", params={"limit": 200}).json()["items"]]
        # a plain tag (a secure NTAG 424 tag's scan carries a message only the chip computes)
        cp = rng.choice([c for c in green if c["colour"] == "green" and not c["secure_tag"]])
        items = [i["code"] for i in http.get(f"/v1/templates/{cp['venue_type']}").json()["items"]]
    body = {
        "checkpoint_id": cp["id"],
        "tag_uid": cp["tag_uid"],
        "scanned_at": datetime.now(UTC).isoformat(),
        "position": cp["location"],
        "accuracy_m": 4,
        "answers": [
            {
                "item_code": c,
                "result": "fail" if c == items[0] else "pass",
                "note": "灭火器压力不足" if c == items[0] else None,
            }
            for c in items
        ],
    }
    token = issue_token(settings, subject=INSPECTORS[0], roles=["inspector"], scopes=["440306"])
    with client("inspection", token) as http:
        http.post(
            "/v1/inspections",
            data={"inspection": json.dumps(body)},
            files=[("photos", ("a.png", gradient_photo((220, 80, 40), (160, 120)), "image/png"))],
        ).raise_for_status()


def shoot(out: Path) -> None:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1680, "height": 1050}, locale="zh-CN")
        page.goto(DASHBOARD)
        page.wait_for_selector("button.demo")
        page.screenshot(path=out / "dashboard-signin.png")
        page.click("button.demo[data-identity=command]")
        page.wait_for_selector("path[data-checkpoint-id]")
        page.wait_for_selector('#live-status[data-state="on"]')
        page.wait_for_function(
            "['hazards','missed','closure','inspectors','staffing'].every("
            "id => Number(document.getElementById('chart-' + id).dataset.points) > 0)"
        )
        live_hazard(random.Random(3))  # noqa: S311 - demo data
        page.wait_for_selector(".feed-item.red")
        page.wait_for_timeout(4000)  # the dispatches follow, and the charts refresh
        page.screenshot(path=out / "dashboard-map.png")
        page.locator("#charts").screenshot(path=out / "dashboard-charts.png")
        page.select_option("#region-filter", "440306001")
        page.wait_for_timeout(1500)
        # markers overlap at street zoom: click the red one itself, not whatever lies on top
        page.locator('path[data-status="red"][data-checkpoint-id]').first.dispatch_event("click")
        page.wait_for_selector("#detail-body .hazard-item")
        page.mouse.move(5, 5)
        page.evaluate("window.scrollTo(0, 0)")
        page.wait_for_timeout(1500)
        page.screenshot(path=out / "dashboard-detail.png")
        page.click("#signout")
        page.wait_for_selector("button.demo")
        page.click("button.lang-toggle >> visible=true")
        page.click("button.demo[data-identity=police]")
        page.wait_for_selector("path[data-checkpoint-id]")
        page.locator("path.grid-poly").first.dispatch_event("click")
        page.wait_for_selector("#detail-body h4")
        page.mouse.move(5, 5)
        page.evaluate("window.scrollTo(0, 0)")
        page.wait_for_timeout(1500)
        page.screenshot(path=out / "dashboard-street-en.png")
        browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="docs/screenshots")
    args = parser.parse_args()
    try:
        httpx.get(f"{DASHBOARD}/healthz", timeout=3).raise_for_status()
    except httpx.HTTPError:
        print("start the platform first: make run (dashboard on :8100)", file=sys.stderr)
        return 1
    shoot(Path(args.out))
    print(f"screenshots written to {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
