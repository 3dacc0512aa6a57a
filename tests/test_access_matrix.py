"""Access control, proven: every endpoint of the four services × role × region scope × token.

The routes come from each running service's OpenAPI document, so an endpoint added without an
entry in ``POLICY`` fails here. The table is the contract (docs/api.md, the services' READMEs):

* Public, no token: ``/healthz``, ``/readyz``, ``/metrics``, ``/openapi.json``, ``/docs``.
* Everything else needs a valid bearer token (signature with the configured key and algorithm,
  expiry, issuer, audience) that carries at least one platform role: 401 problem+json with
  ``WWW-Authenticate: Bearer`` otherwise. A role outside the route's list is 403
  ``forbidden-role``.
* Region scope (the token's ``scopes`` are prefixes of region codes):
  - a region code the caller *names* (in the path, the body or ``?region=``) outside their
    scopes is 403 ``out-of-scope``, checked before anything is looked up, so it says nothing
    about what exists (the grid hierarchy itself is readable by every role);
  - a record addressed by its *id* (venue, hazard, person, house, grid member, department,
    dispatch, case, ...) outside their scopes is 404, the same answer as an id that does not
    exist, so ids cannot be probed;
  - a list holds only what lies inside the caller's scopes.
* Department users (role ``department`` with a ``department_id`` claim) see and act on their
  own department's dispatches, cases, stream and evaluation only.

One platform serves every case (starting one costs ~10 s); each endpoint is a subtest.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import jwt
from sqlalchemy import update

from gridgov_common.auth import ROLES
from gridgov_common.demo.photos import unique_jpeg
from gridgov_common.settings import ServiceSettings
from gridgov_common.testing import eventually, token_for
from gridgov_grid.fixtures import box
from gridgov_inspection.models import Checkpoint
from gridgov_notify.webhooks import generate_secret
from gridgov_population.citizen_id import check_char
from gridgov_population.permits import add_months

from .conftest import ADMIN, Platform

# --- the policy ------------------------------------------------------------------------------

ANY = None  # any platform role
GRID_ADMINS = frozenset({"admin", "grid_admin"})
REGISTRARS = GRID_ADMINS | {"inspector", "grid_member"}
INSPECTORS = frozenset({"admin", "inspector", "grid_member"})
RECTIFIERS = GRID_ADMINS | {"department"}
POP_READERS = frozenset(
    {
        "admin",
        "population_officer",
        "registrar",
        "reviewer",
        "grid_member",
        "department",
        "viewer",
        "service",
    }
)
POP_WRITERS = frozenset({"admin", "population_officer", "registrar"})
POP_REVIEWERS = frozenset({"admin", "reviewer", "population_officer"})
POINTS_ADMINS = frozenset({"admin", "population_officer"})
ADMIN_ONLY = frozenset({"admin"})
NOTIFY_READERS = frozenset({"admin", "grid_admin", "viewer", "department", "service", "reviewer"})
DISPATCH_ACTORS = frozenset({"admin", "department"})
UNROUTED_READERS = frozenset({"admin", "grid_admin", "viewer"})

PUBLIC = "public"  # no token
OPEN = "open"  # every role, everywhere: the grid hierarchy, point lookup, the catalogues
GLOBAL = "global"  # platform-wide configuration and maintenance: gated by role only
REGION = "region"  # region-scoped: checked by a probe in PROBES and/or a list in LISTS

Rule = tuple[frozenset[str] | None, str]

POLICY: dict[str, dict[str, Rule]] = {
    "grid": {
        "GET /healthz": (ANY, PUBLIC),
        "GET /readyz": (ANY, PUBLIC),
        "GET /v1/locate": (ANY, OPEN),
        "POST /v1/locate/batch": (ANY, OPEN),
        "POST /v1/regions": (GRID_ADMINS, REGION),
        "GET /v1/regions": (ANY, OPEN),
        "GET /v1/regions/{code}": (ANY, OPEN),
        "PATCH /v1/regions/{code}": (GRID_ADMINS, REGION),
        "POST /v1/regions/{code}/retire": (GRID_ADMINS, REGION),
        "POST /v1/regions/{code}/split": (GRID_ADMINS, REGION),
        "GET /v1/regions/{code}/coverage": (ANY, OPEN),
        "GET /v1/regions/{code}/export": (ANY, OPEN),
        "POST /v1/import": (GRID_ADMINS, REGION),
        "POST /v1/grids/{code}/members": (GRID_ADMINS, REGION),
        "GET /v1/grids/{code}/members": (ANY, REGION),  # names, phones: personal data
        "DELETE /v1/members/{member_id}": (GRID_ADMINS, REGION),
        "GET /v1/gaps/leaders": (ANY, REGION),
    },
    "inspection": {
        "GET /healthz": (ANY, PUBLIC),
        "GET /readyz": (ANY, PUBLIC),
        "GET /v1/venue-types": (ANY, OPEN),
        "POST /v1/venue-types": (GRID_ADMINS, GLOBAL),
        "GET /v1/templates/{venue_type}": (ANY, OPEN),
        "PUT /v1/templates/{venue_type}": (GRID_ADMINS, GLOBAL),
        "POST /v1/venues": (REGISTRARS, REGION),
        "GET /v1/venues": (ANY, REGION),
        "GET /v1/venues/{venue_id}": (ANY, REGION),
        "PATCH /v1/venues/{venue_id}": (REGISTRARS, REGION),
        "POST /v1/venues/{venue_id}/checkpoints": (REGISTRARS, REGION),
        "GET /v1/checkpoints": (ANY, REGION),
        "GET /v1/checkpoints/{checkpoint_id}": (ANY, REGION),
        "PATCH /v1/checkpoints/{checkpoint_id}": (GRID_ADMINS, REGION),
        "POST /v1/inspections": (INSPECTORS, REGION),
        "GET /v1/inspections": (ANY, REGION),
        "GET /v1/inspections/{inspection_id}": (ANY, REGION),
        "GET /v1/photos/{sha256}": (ANY, REGION),
        "GET /v1/hazards": (ANY, REGION),
        "GET /v1/hazards/{hazard_id}": (ANY, REGION),
        "POST /v1/hazards/{hazard_id}/rectification": (RECTIFIERS, REGION),
        "GET /v1/map/checkpoints": (ANY, REGION),
        "GET /v1/map/aggregates": (ANY, REGION),
        "POST /v1/status/sweep": (GRID_ADMINS, GLOBAL),
        "GET /v1/evaluation/inspectors": (ANY, REGION),
        "GET /v1/evaluation/regions": (ANY, REGION),
        "POST /v1/spot-checks/sample": (GRID_ADMINS, REGION),
        "GET /v1/spot-checks": (ANY, REGION),
    },
    "population": {
        "GET /healthz": (ANY, PUBLIC),
        "GET /readyz": (ANY, PUBLIC),
        "POST /v1/persons": (POP_WRITERS, REGION),
        "GET /v1/persons/{person_id}": (POP_READERS, REGION),
        "PATCH /v1/persons/{person_id}": (POP_WRITERS, REGION),
        "POST /v1/persons/search": (POP_READERS, REGION),
        "GET /v1/persons/{person_id}/registrations": (POP_READERS, REGION),
        "GET /v1/audit": (ADMIN_ONLY, GLOBAL),
        "POST /v1/houses": (POP_WRITERS, REGION),
        "GET /v1/houses": (POP_READERS, REGION),
        "GET /v1/houses/{house_id}": (POP_READERS, REGION),
        "PATCH /v1/houses/{house_id}": (POP_WRITERS, REGION),
        "POST /v1/registrations": (POP_WRITERS, REGION),
        "POST /v1/registrations/{registration_id}/departure": (POP_WRITERS, REGION),
        "POST /v1/outflow-reports": (POP_WRITERS, REGION),
        "GET /v1/duplicates": (POP_REVIEWERS, REGION),
        "POST /v1/duplicates/{candidate_id}/decision": (POP_REVIEWERS, REGION),
        "POST /v1/permits": (POP_WRITERS, REGION),
        "GET /v1/permits/{permit_id}": (POP_READERS, REGION),
        "POST /v1/permits/{permit_id}/endorsements": (POP_WRITERS, REGION),
        "POST /v1/employers": (POP_WRITERS, REGION),
        "GET /v1/employers/{employer_id}": (POP_READERS, REGION),
        "POST /v1/employers/{employer_id}/employees": (POP_WRITERS, REGION),
        "GET /v1/employers/{employer_id}/employees": (POP_READERS, REGION),
        "GET /v1/staffing": (POP_READERS, REGION),
        "POST /v1/points/tables": (POINTS_ADMINS, GLOBAL),
        "GET /v1/points/tables/{version}": (POP_READERS, GLOBAL),
        "PUT /v1/points/quotas": (POINTS_ADMINS, REGION),
        "POST /v1/points/applications": (POP_WRITERS, REGION),
        "POST /v1/points/applications/{application_id}/recompute": (POP_READERS, REGION),
        "GET /v1/points/rankings": (POP_READERS, REGION),
        "POST /v1/admin/pii-key-rotation": (ADMIN_ONLY, GLOBAL),
    },
    "notify": {
        "GET /healthz": (ANY, PUBLIC),
        "GET /readyz": (ANY, PUBLIC),
        "GET /v1/known-regions/{code}": (ANY, REGION),
        "POST /v1/departments": (GRID_ADMINS, REGION),
        "GET /v1/departments": (NOTIFY_READERS, REGION),
        "GET /v1/departments/{dept_id}": (NOTIFY_READERS, REGION),
        "PATCH /v1/departments/{dept_id}": (GRID_ADMINS, REGION),
        "POST /v1/departments/{dept_id}/webhook-secrets": (GRID_ADMINS, REGION),
        "DELETE /v1/departments/{dept_id}/webhook-secrets/{secret_id}": (GRID_ADMINS, REGION),
        "GET /v1/departments/{dept_id}/evaluation": (NOTIFY_READERS, REGION),
        "GET /v1/departments/{dept_id}/stream": (NOTIFY_READERS, REGION),
        "GET /v1/routing-rules": (NOTIFY_READERS, GLOBAL),
        "POST /v1/routing-rules": (ADMIN_ONLY, GLOBAL),
        "GET /v1/routing-rules/{rule_id}/versions": (NOTIFY_READERS, GLOBAL),
        "PUT /v1/routing-rules/{rule_id}": (ADMIN_ONLY, GLOBAL),
        "GET /v1/dispatches": (NOTIFY_READERS, REGION),
        "GET /v1/dispatches/{dispatch_id}": (NOTIFY_READERS, REGION),
        "GET /v1/dispatches/{dispatch_id}/history": (NOTIFY_READERS, REGION),
        "POST /v1/dispatches/{dispatch_id}/ack": (DISPATCH_ACTORS, REGION),
        "POST /v1/dispatches/{dispatch_id}/feedback": (DISPATCH_ACTORS, REGION),
        "POST /v1/dispatches/{dispatch_id}/close": (DISPATCH_ACTORS, REGION),
        "GET /v1/cases": (NOTIFY_READERS, REGION),
        "GET /v1/cases/{case_id}": (NOTIFY_READERS, REGION),
        "GET /v1/unrouted-events": (UNROUTED_READERS, REGION),
    },
}
# Served without a token but not in the OpenAPI document.
PUBLIC_UNLISTED = ("/metrics", "/openapi.json", "/docs")


def allowed(rule: Rule) -> list[str]:
    roles, _ = rule
    return [r for r in ROLES if roles is None or r in roles]


# --- HTTP ------------------------------------------------------------------------------------


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    data: dict[str, Any] | None = None
    files: list[Any] | None = None


@dataclass
class Answer:
    status: int
    headers: httpx.Headers
    body: Any

    def slug(self) -> str | None:
        if isinstance(self.body, dict) and isinstance(self.body.get("type"), str):
            return self.body["type"].removeprefix("urn:gridgov:problem:")
        return None

    def is_problem(self, status: int, slug: str | None = None) -> bool:
        return (
            self.status == status
            and self.headers.get("content-type", "").startswith("application/problem+json")
            and (slug is None or self.slug() == slug)
        )

    def __str__(self) -> str:
        text = json.dumps(self.body, ensure_ascii=False) if self.body is not None else ""
        return f"{self.status} {text[:200]}"


async def send(http: httpx.AsyncClient, call: Call, authorization: str | None) -> Answer:
    headers = {"Authorization": authorization} if authorization is not None else {}
    async with http.stream(
        call.method,
        call.path,
        params=call.params,
        json=call.json,
        data=call.data,
        files=call.files,
        headers=headers,
    ) as r:
        kind = r.headers.get("content-type", "")
        if kind.startswith("text/event-stream"):  # a live stream: the status is the answer
            return Answer(r.status_code, r.headers, None)
        raw = await r.aread()
    body = json.loads(raw) if raw and "json" in kind else None
    return Answer(r.status_code, r.headers, body)


def bearer(token: str) -> str:
    return f"Bearer {token}"


DUMMY = {"code": "440306999999999", "venue_type": "no_such_type", "sha256": "0" * 64}


def dummy_call(route: str) -> Call:
    """The route with made-up ids and an empty body: enough to reach the gate."""
    method, path = route.split(" ", 1)
    for part in path.split("/"):
        if part.startswith("{"):
            name = part[1:-1]
            path = path.replace(part, DUMMY.get(name, f"no-such-{name}"))
    return Call(method, path, json={} if method in ("POST", "PUT", "PATCH") else None)


# --- tokens ----------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def bad_credentials() -> dict[str, str | None]:
    """Authorization header values that must all be refused with 401."""
    settings = ServiceSettings()
    key = settings.jwt_signing_key.get_secret_value()
    now = int(time.time())
    claims = {
        "sub": "mallory",
        "roles": ["admin"],
        "scopes": ["*"],
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + 3600,
    }

    def hs256(c: dict[str, Any], k: str = key) -> str:
        return bearer(jwt.encode(c, k, algorithm="HS256"))

    viewer = token_for(roles=["viewer"], scopes=["440306002"], subject="viewer-b")
    header, _, signature = viewer.split(".")
    tampered = f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"
    none_header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    unsigned = f"{none_header}.{b64url(json.dumps(claims).encode())}."
    no_exp = {k: v for k, v in claims.items() if k != "exp"}
    return {
        "missing": None,
        "empty bearer": "Bearer",
        "basic scheme": "Basic " + base64.b64encode(b"admin:admin").decode(),
        "not a JWT": "Bearer not-a-jwt",
        "expired": bearer(token_for(roles=["admin"], ttl=timedelta(hours=-1))),
        "not yet valid": hs256(claims | {"nbf": now + 3600}),
        "signed with another key": hs256(claims, "another-key-that-is-long-enough-32b!"),
        "alg none": bearer(unsigned),
        "tampered payload": bearer(tampered),
        "wrong issuer": hs256(claims | {"iss": "https://idp.elsewhere.example"}),
        "wrong audience": hs256(claims | {"aud": "another-api"}),
        "no expiry": hs256(no_exp),
        "roles not a list": hs256(claims | {"roles": "admin"}),
    }


# --- the world: real objects in two streets ----------------------------------------------------


@dataclass
class Side:
    name: str
    street: str
    community: str
    grid: str
    point: tuple[float, float]
    police: str
    committee: str
    ids: dict[str, str] = field(default_factory=dict)

    def token(self, role: str) -> str:
        return token_for(
            roles=[role],
            scopes=[self.street],
            subject=f"{role}-{self.name}",
            department_id=self.police if role == "department" else None,
        )


@dataclass
class World:
    p: Platform
    a: Side
    b: Side
    case_grid: dict[str, str | None] = field(default_factory=dict)
    person_region: dict[str, str] = field(default_factory=dict)

    def other(self, side: Side) -> Side:
        return self.b if side is self.a else self.a


TODAY = date.today()
NOW = datetime.now(UTC)
YEAR = TODAY.year
EVIDENCE = [{"kind": "employment", "description": "劳动合同", "reference": "HT-1"}]


def citizen_id(seq: int) -> str:
    first17 = f"42010219900101{seq:03d}"
    return first17 + check_char(first17)


def jpeg() -> bytes:
    return unique_jpeg(2000)


def tag() -> str:
    return os.urandom(7).hex().upper()


def inspection_call(side: Side, checkpoint: str, fail: set[str]) -> Call:
    body = {
        "checkpoint_id": side.ids[checkpoint],
        "tag_uid": side.ids[f"{checkpoint}_tag"],
        "scanned_at": datetime.now(UTC).isoformat(),
        "position": list(side.point),
        "accuracy_m": 5,
        "answers": [
            {"item_code": c, "result": "fail" if c in fail else "pass"}
            for c in side.ids["items"].split(",")
        ],
    }
    return Call(
        "POST",
        "/v1/inspections",
        data={"inspection": json.dumps(body)},
        files=[("photos", ("scene.jpg", jpeg(), "image/jpeg"))],
    )


async def ok(http: httpx.AsyncClient, call: Call, token: str, status: int = 200) -> Any:
    answer = await send(http, call, bearer(token))
    assert answer.status == status, f"{call.method} {call.path}: {answer}"
    return answer.body


async def build_world(p: Platform, http: dict[str, httpx.AsyncClient]) -> World:
    c = p.city
    a = Side(
        "A",
        c.street,
        c.community,
        c.grid_west,
        c.point_in(c.grid_west),
        "police-xinan",
        "committee-haiyu",
    )
    b = Side(
        "B",
        c.other_street,
        c.other_community,
        c.other_grid,
        c.point_in(c.other_grid),
        "police-xixiang",
        "committee-gushu",
    )
    w = World(p, a, b)
    g, i, pop, n = http["grid"], http["inspection"], http["population"], http["notify"]

    # grid-svc: a leader with a phone in A's grid; B's grid has a member but no leader.
    for side, role in ((a, "leader"), (b, "committee_member")):
        member = await ok(
            g,
            Call(
                "POST",
                f"/v1/grids/{side.grid}/members",
                json={
                    "name": f"网格员{side.name}",
                    "role": role,
                    "phone": "13811112222",
                    "valid_from": TODAY.isoformat(),
                },
            ),
            ADMIN,
            201,
        )
        side.ids["member"] = member["id"]

    # notify-svc: missed checkpoints go to a department type nobody has (-> unrouted events),
    # and one department spans both streets.
    rules = (await ok(n, Call("GET", "/v1/routing-rules"), ADMIN))["items"]
    (missed,) = [r for r in rules if r["rule_id"] == "checkpoint-missed"]
    keep = ("name", "event_type", "match", "grid_classes", "ack_sla", "feedback_sla")
    await ok(
        n,
        Call(
            "PUT",
            "/v1/routing-rules/checkpoint-missed",
            json={k: missed[k] for k in keep} | {"department_types": ["housing"]},
        ),
        ADMIN,
    )
    await ok(
        n,
        Call(
            "POST",
            "/v1/departments",
            json={
                "id": "joint-office",
                "name": "联合办公室",
                "type": "other",
                "jurisdictions": [a.street, b.street],
            },
        ),
        ADMIN,
        201,
    )

    # inspection-svc: per street a venue, a checkpoint with a hazard, one that passed.
    items = (await ok(i, Call("GET", "/v1/templates/restaurant"), ADMIN))["items"]
    for side in (a, b):
        inspector = side.token("inspector")
        side.ids["items"] = ",".join(x["code"] for x in items)
        venue = await ok(
            i,
            Call(
                "POST",
                "/v1/venues",
                json={
                    "name": f"饭店{side.name}",
                    "venue_type": "restaurant",
                    "address": "路1号",
                    "location": list(side.point),
                    "contact_phone": "13800000000",
                },
            ),
            inspector,
            201,
        )
        side.ids["venue"] = venue["id"]
        for cp in ("checkpoint", "checkpoint2"):
            side.ids[f"{cp}_tag"] = tag()
            made = await ok(
                i,
                Call(
                    "POST",
                    f"/v1/venues/{venue['id']}/checkpoints",
                    json={"name": cp, "tag_uid": side.ids[f"{cp}_tag"], "cycle_days": 30},
                ),
                inspector,
                201,
            )
            side.ids[cp] = made["id"]
        failed = await ok(
            i, inspection_call(side, "checkpoint", {items[0]["code"]}), inspector, 201
        )
        side.ids["inspection"] = failed["id"]
        side.ids["photo"] = failed["photos"][0]
        await ok(i, inspection_call(side, "checkpoint2", set()), inspector, 201)
        hazards = await ok(
            i, Call("GET", "/v1/hazards", params={"checkpoint_id": side.ids["checkpoint"]}), ADMIN
        )
        side.ids["hazard"] = hazards["items"][0]["id"]
    since, until = (NOW - timedelta(hours=1)).isoformat(), (NOW + timedelta(days=40)).isoformat()
    checks = await ok(
        i,
        Call(
            "POST",
            "/v1/spot-checks/sample",
            json={
                "since": since,
                "until": datetime.now(UTC).isoformat(),
                "inspectors": ["inspector-A", "inspector-B"],
                "share": 1,
            },
        ),
        ADMIN,
        201,
    )
    for check in checks:
        side = a if check["grid_code"].startswith(a.street) else b
        side.ids["spot_check"] = check["id"]
    # Both second checkpoints' cycles run out (test-only time travel, as the closed-loop tests).
    async with p.inspection.ctx.db.transaction() as s:
        await s.execute(
            update(Checkpoint)
            .where(Checkpoint.id.in_([a.ids["checkpoint2"], b.ids["checkpoint2"]]))
            .values(due_at=datetime.now(UTC) - timedelta(hours=1))
        )
    await ok(i, Call("POST", "/v1/status/sweep"), ADMIN)

    # population-svc: per street a house, two persons alike (a duplicate candidate), a
    # registration, a permit, an employer with its employee, a points application.
    await ok(
        pop,
        Call(
            "POST",
            "/v1/points/tables",
            json={
                "version": "matrix-1",
                "items": [
                    {
                        "code": "education",
                        "category": "education",
                        "label": "学历",
                        "kind": "choice",
                        "choices": {"bachelor": 50},
                    }
                ],
            },
        ),
        ADMIN,
        201,
    )
    for n_side, side in enumerate((a, b)):
        lon, lat = side.point
        house = await ok(
            pop,
            Call(
                "POST",
                "/v1/houses",
                json={
                    "community_code": side.community,
                    "address": f"{side.name}栋",
                    "lon": lon,
                    "lat": lat,
                    "owner_name": "李四",
                    "floor_area_m2": 100.0,
                    "use": "residential",
                    "rooms": [{"number": "101", "area_m2": 20.0}],
                },
            ),
            ADMIN,
            201,
        )
        side.ids["house"] = house["id"]
        for key, seq in (("person", 10 + n_side * 10), ("person2", 11 + n_side * 10)):
            person = await ok(
                pop,
                Call(
                    "POST",
                    "/v1/persons",
                    json={
                        "region_code": side.street,
                        "name": f"张{side.name}",
                        "id_number": citizen_id(seq),
                        "birth_date": "1990-01-01",
                        "phone": "13812345678",
                        "household_region_code": "420102",
                    },
                ),
                ADMIN,
                201,
            )
            side.ids[key] = person["id"]
        side.ids["duplicate"] = person["duplicate_candidates"][0]["candidate_id"]
        registration = await ok(
            pop,
            Call(
                "POST",
                "/v1/registrations",
                json={
                    "person_id": side.ids["person"],
                    "house_id": house["id"],
                    "arrival_date": add_months(TODAY, -7).isoformat(),
                    "reason": "work",
                },
            ),
            ADMIN,
            201,
        )
        side.ids["registration"] = registration["id"]
        permit = await ok(
            pop,
            Call(
                "POST",
                "/v1/permits",
                json={
                    "person_id": side.ids["person"],
                    "evidence": EVIDENCE,
                    "issuing_authority": "公安分局",
                },
            ),
            ADMIN,
            201,
        )
        side.ids["permit"] = permit["id"]
        employer = await ok(
            pop,
            Call(
                "POST",
                "/v1/employers",
                json={"region_code": side.street, "name": f"公司{side.name}"},
            ),
            ADMIN,
            201,
        )
        side.ids["employer"] = employer["id"]
        await ok(
            pop,
            Call(
                "POST",
                f"/v1/employers/{employer['id']}/employees",
                json={"person_id": side.ids["person"], "start_date": TODAY.isoformat()},
            ),
            ADMIN,
            201,
        )
        await ok(
            pop,
            Call(
                "PUT",
                "/v1/points/quotas",
                json={
                    "year": YEAR,
                    "town_code": side.street,
                    "purpose": "school_place",
                    "quota": 1,
                },
            ),
            ADMIN,
        )
        application = await ok(
            pop,
            Call(
                "POST",
                "/v1/points/applications",
                json={
                    "person_id": side.ids["person"],
                    "year": YEAR,
                    "town_code": side.street,
                    "purpose": "school_place",
                    "table_version": "matrix-1",
                    "facts": {"education": "bachelor"},
                },
            ),
            ADMIN,
            201,
        )
        side.ids["points_application"] = application["id"]
        for key in ("person", "person2"):
            w.person_region[side.ids[key]] = side.street

    # notify-svc routes each hazard to the police, fire brigade and committee of its street.
    async def routed() -> bool:
        cases = (await ok(n, Call("GET", "/v1/cases", params={"limit": 500}), ADMIN))["items"]
        unrouted = (await ok(n, Call("GET", "/v1/unrouted-events"), ADMIN))["items"]
        for side in (a, b):
            (case,) = [x for x in cases if x["source_subject"] == side.ids["hazard"]] or [None]
            if case is None or len(case["dispatches"]) < 3:
                return False
            side.ids["case"] = case["id"]
            for d in case["dispatches"]:
                role = {side.police: "dispatch", side.committee: "committee_dispatch"}
                side.ids[role.get(d["department_id"], "fire_dispatch")] = d["id"]
        w.case_grid = {x["id"]: x["grid_code"] for x in cases}
        grids = {u["grid_code"] for u in unrouted}
        return a.grid in grids and b.grid in grids

    await eventually(routed, timeout=30)
    for side in (a, b):
        dept = await ok(n, Call("GET", f"/v1/departments/{side.police}"), ADMIN)
        side.ids["secret"] = dept["webhook"]["secrets"][0]["id"]
        side.ids["since"], side.ids["until"] = since, until
    return w


# --- region probes: one request aimed at a side's object or region ---------------------------


@dataclass
class Probe:
    build: Callable[[World, Side], Call]
    out: int  # the answer to a caller scoped to the other street: 403 or 404
    ok: int | None = None  # the answer in scope (None: anything that is not a refusal)


def _part(side: Side, n: int) -> dict[str, Any]:
    lon, lat = side.point
    return {"name": f"part{n}", "boundary": box(lon - 0.001 * n, lat, lon, lat + 0.001)}


PROBES: dict[str, dict[str, Probe]] = {
    "grid": {
        "POST /v1/regions": Probe(
            lambda w, s: Call(
                "POST",
                "/v1/regions",
                json={
                    "code": s.community,
                    "level": "community",
                    "parent_code": s.street,
                    "name": "已有",
                },
            ),
            403,
            409,
        ),
        "PATCH /v1/regions/{code}": Probe(
            lambda w, s: Call("PATCH", f"/v1/regions/{s.grid}", json={"households": 120}), 403, 200
        ),
        # The street has active children: in scope that is a 409, nothing retires.
        "POST /v1/regions/{code}/retire": Probe(
            lambda w, s: Call("POST", f"/v1/regions/{s.street}/retire", json={}), 403, 409
        ),
        # A street is not a grid: in scope that is a 422, nothing splits.
        "POST /v1/regions/{code}/split": Probe(
            lambda w, s: Call(
                "POST", f"/v1/regions/{s.street}/split", json={"parts": [_part(s, 1), _part(s, 2)]}
            ),
            403,
            422,
        ),
        "POST /v1/import": Probe(
            lambda w, s: Call(
                "POST",
                "/v1/import",
                json={
                    "type": "FeatureCollection",
                    "features": [
                        {
                            "type": "Feature",
                            "geometry": None,
                            "properties": {
                                "code": s.community,
                                "level": "community",
                                "parent_code": s.street,
                                "name": "已有",
                            },
                        }
                    ],
                },
            ),
            403,
            422,
        ),
        "POST /v1/grids/{code}/members": Probe(
            lambda w, s: Call(
                "POST",
                f"/v1/grids/{s.grid}/members",
                json={
                    "name": "协管员",
                    "role": "coordinator",
                    "phone": "13800000001",
                    "valid_from": TODAY.isoformat(),
                },
            ),
            403,
            201,
        ),
        "GET /v1/grids/{code}/members": Probe(
            lambda w, s: Call("GET", f"/v1/grids/{s.grid}/members"), 403, 200
        ),
        "DELETE /v1/members/{member_id}": Probe(
            lambda w, s: Call("DELETE", f"/v1/members/{s.ids['member']}"), 404, 200
        ),
    },
    "inspection": {
        "POST /v1/venues": Probe(
            lambda w, s: Call(
                "POST",
                "/v1/venues",
                json={
                    "name": "新店",
                    "venue_type": "shop",
                    "address": "路2号",
                    "location": list(s.point),
                },
            ),
            403,
            201,
        ),
        "GET /v1/venues/{venue_id}": Probe(
            lambda w, s: Call("GET", f"/v1/venues/{s.ids['venue']}"), 404, 200
        ),
        "PATCH /v1/venues/{venue_id}": Probe(
            lambda w, s: Call(
                "PATCH", f"/v1/venues/{s.ids['venue']}", json={"operator_name": "王"}
            ),
            404,
            200,
        ),
        "POST /v1/venues/{venue_id}/checkpoints": Probe(
            lambda w, s: Call(
                "POST",
                f"/v1/venues/{s.ids['venue']}/checkpoints",
                json={"name": "仓库", "tag_uid": tag()},
            ),
            404,
            201,
        ),
        "GET /v1/checkpoints/{checkpoint_id}": Probe(
            lambda w, s: Call("GET", f"/v1/checkpoints/{s.ids['checkpoint']}"), 404, 200
        ),
        "PATCH /v1/checkpoints/{checkpoint_id}": Probe(
            lambda w, s: Call(
                "PATCH",
                f"/v1/checkpoints/{s.ids['checkpoint']}",
                json={"assigned_inspector": f"inspector-{s.name}"},
            ),
            404,
            200,
        ),
        "POST /v1/inspections": Probe(lambda w, s: inspection_call(s, "checkpoint2", set()), 404),
        "GET /v1/inspections": Probe(
            lambda w, s: Call(
                "GET", "/v1/inspections", params={"checkpoint_id": s.ids["checkpoint"]}
            ),
            404,
            200,
        ),
        "GET /v1/inspections/{inspection_id}": Probe(
            lambda w, s: Call("GET", f"/v1/inspections/{s.ids['inspection']}"), 404, 200
        ),
        "GET /v1/photos/{sha256}": Probe(
            lambda w, s: Call("GET", f"/v1/photos/{s.ids['photo']}"), 404, 200
        ),
        "GET /v1/hazards/{hazard_id}": Probe(
            lambda w, s: Call("GET", f"/v1/hazards/{s.ids['hazard']}"), 404, 200
        ),
        "POST /v1/hazards/{hazard_id}/rectification": Probe(
            lambda w, s: Call(
                "POST", f"/v1/hazards/{s.ids['hazard']}/rectification", json={"note": "已整改"}
            ),
            404,
        ),
        "POST /v1/spot-checks/sample": Probe(
            lambda w, s: Call(
                "POST",
                "/v1/spot-checks/sample",
                json={
                    "since": s.ids["since"],
                    "until": datetime.now(UTC).isoformat(),
                    "inspectors": ["x", "y"],
                    "region": s.street,
                },
            ),
            403,
            201,
        ),
    },
    "population": {
        "POST /v1/persons": Probe(
            lambda w, s: Call(
                "POST",
                "/v1/persons",
                json={
                    "region_code": s.street,
                    "name": "新人",
                    "id_number": citizen_id(90 if s.name == "A" else 91),
                    "birth_date": "1990-01-01",
                },
            ),
            403,
            201,
        ),
        "GET /v1/persons/{person_id}": Probe(
            lambda w, s: Call("GET", f"/v1/persons/{s.ids['person']}"), 404, 200
        ),
        "PATCH /v1/persons/{person_id}": Probe(
            lambda w, s: Call(
                "PATCH", f"/v1/persons/{s.ids['person']}", json={"occupation": "厨师"}
            ),
            404,
            200,
        ),
        "GET /v1/persons/{person_id}/registrations": Probe(
            lambda w, s: Call("GET", f"/v1/persons/{s.ids['person']}/registrations"), 404, 200
        ),
        "POST /v1/houses": Probe(
            lambda w, s: Call(
                "POST",
                "/v1/houses",
                json={
                    "community_code": s.community,
                    "address": "新栋",
                    "lon": s.point[0],
                    "lat": s.point[1],
                    "owner_name": "王五",
                    "floor_area_m2": 50.0,
                    "use": "residential",
                },
            ),
            403,
            201,
        ),
        "GET /v1/houses/{house_id}": Probe(
            lambda w, s: Call("GET", f"/v1/houses/{s.ids['house']}"), 404, 200
        ),
        "PATCH /v1/houses/{house_id}": Probe(
            lambda w, s: Call(
                "PATCH", f"/v1/houses/{s.ids['house']}", json={"rental_status": "rented"}
            ),
            404,
            200,
        ),
        "POST /v1/registrations": Probe(
            lambda w, s: Call(
                "POST",
                "/v1/registrations",
                json={
                    "person_id": s.ids["person2"],
                    "house_id": s.ids["house"],
                    "arrival_date": TODAY.isoformat(),
                    "reason": "work",
                },
            ),
            404,
            201,
        ),
        "POST /v1/registrations/{registration_id}/departure": Probe(
            lambda w, s: Call(
                "POST",
                f"/v1/registrations/{s.ids['registration']}/departure",
                json={"departure_date": TODAY.isoformat()},
            ),
            404,
            200,
        ),
        # In scope: 422, the person's household place is not this community's district.
        "POST /v1/outflow-reports": Probe(
            lambda w, s: Call(
                "POST",
                "/v1/outflow-reports",
                json={
                    "person_id": s.ids["person"],
                    "community_code": s.community,
                    "destination": "广州",
                },
            ),
            403,
            422,
        ),
        "POST /v1/duplicates/{candidate_id}/decision": Probe(
            lambda w, s: Call(
                "POST",
                f"/v1/duplicates/{s.ids['duplicate']}/decision",
                json={"decision": "not_duplicate", "purpose": "核对证件"},
            ),
            404,
            200,
        ),
        "POST /v1/permits": Probe(
            lambda w, s: Call(
                "POST",
                "/v1/permits",
                json={
                    "person_id": s.ids["person2"],
                    "evidence": EVIDENCE,
                    "issuing_authority": "公安分局",
                },
            ),
            404,
        ),
        "GET /v1/permits/{permit_id}": Probe(
            lambda w, s: Call("GET", f"/v1/permits/{s.ids['permit']}"), 404, 200
        ),
        "POST /v1/permits/{permit_id}/endorsements": Probe(
            lambda w, s: Call("POST", f"/v1/permits/{s.ids['permit']}/endorsements", json={}), 404
        ),
        "POST /v1/employers": Probe(
            lambda w, s: Call(
                "POST", "/v1/employers", json={"region_code": s.street, "name": "新公司"}
            ),
            403,
            201,
        ),
        "GET /v1/employers/{employer_id}": Probe(
            lambda w, s: Call("GET", f"/v1/employers/{s.ids['employer']}"), 404, 200
        ),
        "POST /v1/employers/{employer_id}/employees": Probe(
            lambda w, s: Call(
                "POST",
                f"/v1/employers/{s.ids['employer']}/employees",
                json={"person_id": s.ids["person2"], "start_date": TODAY.isoformat()},
            ),
            404,
            201,
        ),
        "GET /v1/employers/{employer_id}/employees": Probe(
            lambda w, s: Call("GET", f"/v1/employers/{s.ids['employer']}/employees"), 404, 200
        ),
        "PUT /v1/points/quotas": Probe(
            lambda w, s: Call(
                "PUT",
                "/v1/points/quotas",
                json={"year": YEAR, "town_code": s.street, "purpose": "school_place", "quota": 2},
            ),
            403,
            200,
        ),
        "POST /v1/points/applications": Probe(
            lambda w, s: Call(
                "POST",
                "/v1/points/applications",
                json={
                    "person_id": s.ids["person"],
                    "year": YEAR,
                    "town_code": s.street,
                    "purpose": "school_place",
                    "table_version": "matrix-1",
                    "facts": {},
                },
            ),
            403,
        ),
        "POST /v1/points/applications/{application_id}/recompute": Probe(
            lambda w, s: Call(
                "POST", f"/v1/points/applications/{s.ids['points_application']}/recompute"
            ),
            404,
            200,
        ),
        "GET /v1/points/rankings": Probe(
            lambda w, s: Call(
                "GET",
                "/v1/points/rankings",
                params={"year": YEAR, "town_code": s.street, "purpose": "school_place"},
            ),
            403,
            200,
        ),
    },
    "notify": {
        "GET /v1/known-regions/{code}": Probe(
            lambda w, s: Call("GET", f"/v1/known-regions/{s.grid}"), 403, 200
        ),
        "POST /v1/departments": Probe(
            lambda w, s: Call(
                "POST",
                "/v1/departments",
                json={
                    "id": f"new-{s.name}",
                    "name": "新部门",
                    "type": "other",
                    "jurisdictions": [s.community],
                },
            ),
            403,
            201,
        ),
        "GET /v1/departments/{dept_id}": Probe(
            lambda w, s: Call("GET", f"/v1/departments/{s.police}"), 404, 200
        ),
        "PATCH /v1/departments/{dept_id}": Probe(
            lambda w, s: Call("PATCH", f"/v1/departments/{s.police}", json={"name": s.police}),
            404,
            200,
        ),
        "POST /v1/departments/{dept_id}/webhook-secrets": Probe(
            lambda w, s: Call(
                "POST",
                f"/v1/departments/{s.police}/webhook-secrets",
                json={"secret": generate_secret()},
            ),
            404,
            201,
        ),
        "DELETE /v1/departments/{dept_id}/webhook-secrets/{secret_id}": Probe(
            lambda w, s: Call(
                "DELETE", f"/v1/departments/{s.police}/webhook-secrets/{s.ids['secret']}"
            ),
            404,
            204,
        ),
        "GET /v1/departments/{dept_id}/evaluation": Probe(
            lambda w, s: Call("GET", f"/v1/departments/{s.police}/evaluation"), 404, 200
        ),
        "GET /v1/departments/{dept_id}/stream": Probe(
            lambda w, s: Call("GET", f"/v1/departments/{s.police}/stream"), 404, 200
        ),
        "GET /v1/dispatches/{dispatch_id}": Probe(
            lambda w, s: Call("GET", f"/v1/dispatches/{s.ids['dispatch']}"), 404, 200
        ),
        "GET /v1/dispatches/{dispatch_id}/history": Probe(
            lambda w, s: Call("GET", f"/v1/dispatches/{s.ids['dispatch']}/history"), 404, 200
        ),
        "POST /v1/dispatches/{dispatch_id}/ack": Probe(
            lambda w, s: Call("POST", f"/v1/dispatches/{s.ids['dispatch']}/ack"), 404, 200
        ),
        "POST /v1/dispatches/{dispatch_id}/feedback": Probe(
            lambda w, s: Call(
                "POST",
                f"/v1/dispatches/{s.ids['dispatch']}/feedback",
                json={"result": "in_progress", "note": "处理中"},
            ),
            404,
            200,
        ),
        "POST /v1/dispatches/{dispatch_id}/close": Probe(
            lambda w, s: Call("POST", f"/v1/dispatches/{s.ids['dispatch']}/close"), 404
        ),
        "GET /v1/cases/{case_id}": Probe(
            lambda w, s: Call("GET", f"/v1/cases/{s.ids['case']}"), 404, 200
        ),
    },
}


# --- lists: what each returns, by region -----------------------------------------------------


@dataclass
class Listing:
    build: Callable[[World], Call]
    regions: Callable[[World, Any], list[str | None]]  # the region of each returned item
    region_param: str | None = None  # the query parameter that narrows to a region


def _items(key: str, field_: str = "items") -> Callable[[World, Any], list[str | None]]:
    return lambda w, body: [x.get(key) for x in body[field_]]


def _get(path: str, **params: Any) -> Callable[[World], Call]:
    return lambda w: Call("GET", path, params=params or None)


def _period(path: str, **params: Any) -> Callable[[World], Call]:
    return lambda w: Call(
        "GET", path, params={"since": w.a.ids["since"], "until": w.a.ids["until"], **params}
    )


LISTS: dict[str, dict[str, Listing]] = {
    "grid": {
        "GET /v1/gaps/leaders": Listing(
            _get("/v1/gaps/leaders"), lambda w, body: [x["code"] for x in body], "under"
        ),
    },
    "inspection": {
        "GET /v1/venues": Listing(_get("/v1/venues"), _items("grid_code"), "region"),
        "GET /v1/checkpoints": Listing(_get("/v1/checkpoints"), _items("grid_code"), "region"),
        "GET /v1/hazards": Listing(_get("/v1/hazards"), _items("grid_code"), "region"),
        "GET /v1/map/checkpoints": Listing(
            _get("/v1/map/checkpoints"),
            lambda w, body: [f["properties"]["grid_code"] for f in body["features"]],
            "region",
        ),
        "GET /v1/map/aggregates": Listing(
            _get("/v1/map/aggregates", level="grid"), _items("code"), "region"
        ),
        "GET /v1/evaluation/inspectors": Listing(
            _period("/v1/evaluation/inspectors"),
            lambda w, body: [
                {"inspector-A": w.a.street, "inspector-B": w.b.street}.get(x["inspector"])
                for x in body["items"]
            ],
            "region",
        ),
        "GET /v1/evaluation/regions": Listing(
            _period("/v1/evaluation/regions", level="grid"), _items("code"), "region"
        ),
        "GET /v1/spot-checks": Listing(_get("/v1/spot-checks"), _items("grid_code"), "region"),
    },
    "population": {
        "POST /v1/persons/search": Listing(
            lambda w: Call(
                "POST",
                "/v1/persons/search",
                json={"birth_date": "1990-01-01", "household_region_code": "420102"},
            ),
            _items("region_code"),
        ),
        "GET /v1/houses": Listing(_get("/v1/houses"), _items("grid_code"), "region"),
        "GET /v1/duplicates": Listing(
            _get("/v1/duplicates"),
            lambda w, body: [w.person_region.get(x["person_a"]) for x in body["items"]],
        ),
        "GET /v1/staffing": Listing(_get("/v1/staffing"), _items("grid_code", "grids"), "region"),
    },
    "notify": {
        "GET /v1/departments": Listing(
            _get("/v1/departments"),
            lambda w, body: [j for x in body["items"] for j in x["jurisdictions"]],
        ),
        "GET /v1/dispatches": Listing(
            _get("/v1/dispatches", limit=500),
            lambda w, body: [w.case_grid.get(x["case_id"]) for x in body["items"]],
        ),
        "GET /v1/cases": Listing(_get("/v1/cases", limit=500), _items("grid_code")),
        "GET /v1/unrouted-events": Listing(_get("/v1/unrouted-events"), _items("grid_code")),
    },
}

SERVICES = ("grid", "inspection", "population", "notify")


# --- the test --------------------------------------------------------------------------------


async def test_access_matrix(platform: Platform, subtests: Any) -> None:
    p = platform
    http = {name: httpx.AsyncClient(base_url=getattr(p, name).url, timeout=30) for name in SERVICES}
    try:
        await _run(p, http, subtests)
    finally:
        for client in http.values():
            await client.aclose()


async def _run(p: Platform, http: dict[str, httpx.AsyncClient], subtests: Any) -> None:
    # Every route of every service has a policy, and every policy a route.
    routes: dict[str, list[str]] = {}
    for svc in SERVICES:
        doc = (await http[svc].get("/openapi.json")).json()
        routes[svc] = [f"{m.upper()} {path}" for path, ops in doc["paths"].items() for m in ops]
    with subtests.test(msg="every route has a policy"):
        for svc in SERVICES:
            unlisted = sorted(set(routes[svc]) - set(POLICY[svc]))
            stale = sorted(set(POLICY[svc]) - set(routes[svc]))
            assert not unlisted, f"{svc}: routes without an entry in POLICY: {unlisted}"
            assert not stale, f"{svc}: POLICY entries without a route: {stale}"
    with subtests.test(msg="every region-scoped route is probed or listed"):
        for svc in SERVICES:
            scoped = {r for r, (_, scope) in POLICY[svc].items() if scope == REGION}
            checked = set(PROBES[svc]) | set(LISTS[svc])
            assert scoped == checked, (
                f"{svc}: region-scoped but unchecked: {sorted(scoped - checked)}; "
                f"checked but not region-scoped: {sorted(checked - scoped)}"
            )

    with subtests.test(msg="public endpoints answer without a token"):
        for svc in SERVICES:
            paths = [r.split(" ", 1)[1] for r, (_, s) in POLICY[svc].items() if s == PUBLIC]
            for path in (*paths, *PUBLIC_UNLISTED):
                r = await http[svc].get(path)
                assert r.status_code == 200, f"{svc} GET {path}: {r.status_code}"

    gated = [
        (svc, route)
        for svc in SERVICES
        for route in routes[svc]
        if route in POLICY[svc] and POLICY[svc][route][1] != PUBLIC
    ]
    await _tokens(http, gated, subtests)
    await _roles(http, gated, subtests)

    w = await build_world(p, http)
    await _out_of_scope(w, http, subtests)
    await _lists(w, http, subtests)
    await _departments_own_dispatches(w, http, subtests)
    await _moves_out_of_scope(w, http, subtests)
    await _in_scope(w, http, subtests)


async def _each(calls: list[Any]) -> list[Answer]:
    # One after another on one kept-alive connection: every server shares this event loop,
    # so concurrent requests only add connections (measured slower).
    return [await c for c in calls]


async def _tokens(http: dict[str, httpx.AsyncClient], gated: list[tuple[str, str]], subtests: Any):
    """Missing, expired, forged or foreign credentials: 401 problem+json, WWW-Authenticate."""
    credentials = bad_credentials()
    for svc, route in gated:
        with subtests.test(msg="bad credentials are 401", route=f"{svc} {route}"):
            call = dummy_call(route)
            answers = await _each([send(http[svc], call, v) for v in credentials.values()])
            wrong = [
                f"{name}: {a}"
                for name, a in zip(credentials, answers, strict=True)
                if not a.is_problem(401, "unauthorized")
                or not a.headers.get("www-authenticate", "").startswith("Bearer")
            ]
            assert not wrong, wrong


async def _roles(http: dict[str, httpx.AsyncClient], gated: list[tuple[str, str]], subtests: Any):
    """Each role outside a route's list is 403 forbidden-role; each role in it passes the gate
    (a made-up id may be a 404 and an empty body a 422: the question is only the gate)."""
    callers = {
        role: token_for(
            roles=[role],
            subject=f"matrix-{role}",
            department_id="police-xinan" if role == "department" else None,
        )
        for role in ROLES
    }
    # A valid token without any platform role gets nowhere, not even to "any role" reads.
    roleless = {
        "no roles": token_for(roles=[], subject="nobody"),
        "unknown role": token_for(roles=["citizen"], subject="citizen-1"),
    }
    for svc, route in gated:
        with subtests.test(msg="roles", route=f"{svc} {route}"):
            may = set(allowed(POLICY[svc][route]))
            call = dummy_call(route)
            names = [*callers, *roleless]
            tokens = [*callers.values(), *roleless.values()]
            answers = await _each([send(http[svc], call, bearer(t)) for t in tokens])
            wrong = []
            for name, a in zip(names, answers, strict=True):
                if name in may:
                    if a.status in (401, 403) or a.status >= 500:
                        wrong.append(f"{name} (allowed): {a}")
                elif not a.is_problem(403, "forbidden-role"):
                    wrong.append(f"{name} (not allowed): {a}")
            assert not wrong, wrong


def _refusal(a: Answer, status: int) -> bool:
    if status == 403:
        return a.is_problem(403, "out-of-scope")
    return a.is_problem(404, "not-found")


async def _out_of_scope(w: World, http: dict[str, httpx.AsyncClient], subtests: Any) -> None:
    """Every allowed role, scoped to the other street, aimed at a street's real object."""
    for svc in SERVICES:
        for route, probe in PROBES[svc].items():
            with subtests.test(msg="out of scope", route=f"{svc} {route}"):
                wrong = []
                for side in (w.a, w.b):
                    other = w.other(side)
                    for role in allowed(POLICY[svc][route]):
                        a = await send(http[svc], probe.build(w, side), bearer(other.token(role)))
                        if not _refusal(a, probe.out):
                            wrong.append(f"{role} of {other.name} on {side.name}'s: {a}")
                assert not wrong, f"expected {probe.out}: {wrong}"
    with subtests.test(msg="refused writes changed nothing"):
        admin = bearer(ADMIN)
        for side in (w.a, w.b):
            g, i, pop, n = (http[s] for s in SERVICES)
            members = await send(g, Call("GET", f"/v1/grids/{side.grid}/members"), admin)
            assert [m["id"] for m in members.body] == [side.ids["member"]], members
            grid = await send(g, Call("GET", f"/v1/regions/{side.grid}"), admin)
            assert grid.body["version"] == 1, grid
            venue = await send(i, Call("GET", f"/v1/venues/{side.ids['venue']}"), admin)
            assert venue.body["operator_name"] is None and venue.body["version"] == 1, venue
            hazard = await send(i, Call("GET", f"/v1/hazards/{side.ids['hazard']}"), admin)
            assert hazard.body["state"] != "rectification_reported", hazard
            person = await send(pop, Call("GET", f"/v1/persons/{side.ids['person']}"), admin)
            assert person.body["occupation"] is None, person
            reg = await send(
                pop, Call("GET", f"/v1/persons/{side.ids['person']}/registrations"), admin
            )
            assert [r["active"] for r in reg.body["items"]] == [True], reg
            dispatch = await send(n, Call("GET", f"/v1/dispatches/{side.ids['dispatch']}"), admin)
            assert dispatch.body["acknowledged_at"] is None, dispatch
            dept = await send(n, Call("GET", f"/v1/departments/{side.police}"), admin)
            assert len(dept.body["webhook"]["secrets"]) == 1, dept


async def _lists(w: World, http: dict[str, httpx.AsyncClient], subtests: Any) -> None:
    """A district caller sees both streets (so the filter has something to filter); a street's
    caller sees its own street only, and naming the other street is 403."""
    district = token_for(roles=["admin"], scopes=["440306"], subject="district-admin")
    for svc in SERVICES:
        for route, listing in LISTS[svc].items():
            with subtests.test(msg="lists", route=f"{svc} {route}"):
                call = listing.build(w)
                everything = await send(http[svc], call, bearer(district))
                assert everything.status == 200, f"district: {everything}"
                seen = listing.regions(w, everything.body)
                for side in (w.a, w.b):
                    assert any((r or "").startswith(side.street) for r in seen), (
                        f"the district sees nothing of street {side.name}: {seen}"
                    )
                wrong = []
                for side in (w.a, w.b):
                    for role in allowed(POLICY[svc][route]):
                        token = bearer(side.token(role))
                        a = await send(http[svc], call, token)
                        regions = listing.regions(w, a.body) if a.status == 200 else None
                        if regions is None or not regions:
                            wrong.append(f"{role} of {side.name} sees nothing: {a}")
                        elif outside := [
                            r for r in regions if not (r or "").startswith(side.street)
                        ]:
                            wrong.append(f"{role} of {side.name} sees {outside}")
                        if listing.region_param:
                            narrowed = Call(
                                call.method,
                                call.path,
                                {**(call.params or {}), listing.region_param: w.other(side).street},
                                call.json,
                            )
                            a = await send(http[svc], narrowed, token)
                            if not a.is_problem(403, "out-of-scope"):
                                wrong.append(f"{role} of {side.name} naming the other: {a}")
                assert not wrong, wrong


async def _departments_own_dispatches(
    w: World, http: dict[str, httpx.AsyncClient], subtests: Any
) -> None:
    n = http["notify"]
    for side in (w.a, w.b):
        with subtests.test(msg="a department user sees and acts on its own only", side=side.name):
            me = bearer(side.token("department"))
            mine = await send(n, Call("GET", "/v1/dispatches"), me)
            assert mine.status == 200 and mine.body["items"], mine
            assert {d["department_id"] for d in mine.body["items"]} == {side.police}
            cases = await send(n, Call("GET", "/v1/cases"), me)
            assert cases.body["items"] and all(
                side.police in {d["department_id"] for d in c["dispatches"]}
                for c in cases.body["items"]
            ), cases
            depts = await send(n, Call("GET", "/v1/departments"), me)
            assert [d["id"] for d in depts.body["items"]] == [side.police], depts
            # Other departments' dispatches in the same case, the other street's case, and the
            # departments themselves: as if they did not exist.
            wrong = []
            for key in ("fire_dispatch", "committee_dispatch"):
                d = side.ids[key]
                for call in (
                    Call("GET", f"/v1/dispatches/{d}"),
                    Call("GET", f"/v1/dispatches/{d}/history"),
                    Call("POST", f"/v1/dispatches/{d}/ack"),
                    Call("POST", f"/v1/dispatches/{d}/feedback", json={"result": "in_progress"}),
                    Call("POST", f"/v1/dispatches/{d}/close"),
                ):
                    if not (a := await send(n, call, me)).is_problem(404):
                        wrong.append(f"{call.method} {call.path}: {a}")
            for call in (
                Call("GET", f"/v1/cases/{w.other(side).ids['case']}"),
                Call("GET", "/v1/departments/fire-baoan"),
                Call("GET", f"/v1/departments/{side.committee}/evaluation"),
                Call("GET", f"/v1/departments/{side.committee}/stream"),
            ):
                if not (a := await send(n, call, me)).is_problem(404):
                    wrong.append(f"{call.method} {call.path}: {a}")
            # A department role without a department_id claim has no dispatches at all.
            anonymous = bearer(token_for(roles=["department"], subject="no-department"))
            a = await send(n, Call("GET", "/v1/dispatches"), anonymous)
            if a.status != 200 or a.body["items"]:
                wrong.append(f"no department_id, GET /v1/dispatches: {a}")
            a = await send(n, Call("POST", f"/v1/dispatches/{side.ids['dispatch']}/ack"), anonymous)
            if not a.is_problem(404):
                wrong.append(f"no department_id, ack: {a}")
            assert not wrong, wrong
            a = await send(n, Call("POST", f"/v1/dispatches/{side.ids['dispatch']}/ack"), me)
            assert a.status == 200 and a.body["state"] == "acknowledged", a


async def _moves_out_of_scope(w: World, http: dict[str, httpx.AsyncClient], subtests: Any) -> None:
    """Changing one's own record so that it lands in the other street is refused too."""
    with subtests.test(msg="moves out of scope"):
        a, b = w.a, w.b
        admin = bearer(a.token("admin"))
        moved = await send(
            http["inspection"],
            Call("PATCH", f"/v1/venues/{a.ids['venue']}", json={"location": list(b.point)}),
            admin,
        )
        assert moved.is_problem(403, "out-of-scope"), moved
        widened = await send(
            http["notify"],
            Call(
                "PATCH", f"/v1/departments/{a.police}", json={"jurisdictions": [a.street, b.street]}
            ),
            admin,
        )
        assert widened.is_problem(403, "out-of-scope"), widened
        into = await send(
            http["population"],
            Call(
                "POST",
                "/v1/registrations",
                json={
                    "person_id": a.ids["person2"],
                    "house_id": b.ids["house"],
                    "arrival_date": TODAY.isoformat(),
                    "reason": "work",
                },
            ),
            admin,
        )
        assert into.is_problem(404, "not-found"), into
        # The department spanning both streets is seen by neither street's overseers.
        for side in (a, b):
            r = await send(
                http["notify"],
                Call("GET", "/v1/departments/joint-office"),
                bearer(side.token("admin")),
            )
            assert r.is_problem(404), r


async def _in_scope(w: World, http: dict[str, httpx.AsyncClient], subtests: Any) -> None:
    """The same requests from inside the street pass: the refusals above were the scope.

    Reads by every allowed role; writes by the street's admin (they change the world, so they
    run last)."""
    for svc in SERVICES:
        for route, probe in PROBES[svc].items():
            with subtests.test(msg="in scope", route=f"{svc} {route}"):
                roles = allowed(POLICY[svc][route]) if route.startswith("GET ") else ["admin"]
                wrong = []
                for side in (w.a, w.b):
                    for role in roles:
                        a = await send(http[svc], probe.build(w, side), bearer(side.token(role)))
                        if probe.ok is not None and a.status != probe.ok:
                            wrong.append(f"{role} of {side.name}: {a} (expected {probe.ok})")
                        elif a.status in (401, 403, 404) or a.status >= 500:
                            wrong.append(f"{role} of {side.name}: {a}")
                assert not wrong, wrong
