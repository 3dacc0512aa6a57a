"""Every service answers with the security headers: on success, on a problem and on a 404."""

from __future__ import annotations

from pathlib import Path

import httpx

from gridgov_common.observability import API_CSP, HTML_CSP, SECURITY_HEADERS
from gridgov_common.testing import token_for

ADMIN = token_for(roles=["admin"], scopes=["440306"])
# A list each service serves to an admin with 200, even when empty.
LISTS = {
    "grid": "/v1/regions",
    "inspection": "/v1/venues",
    "population": "/v1/houses",
    "notify": "/v1/departments",
}
EXPECTED = {name.decode(): value.decode() for name, value in SECURITY_HEADERS}


def assert_secured(r: httpx.Response, csp: tuple[bytes, bytes] = API_CSP) -> None:
    for name, value in EXPECTED.items():
        assert r.headers.get(name) == value, (r.request.url, name, r.headers)
    assert r.headers["content-security-policy"] == csp[1].decode()
    assert r.headers["x-request-id"]


async def test_every_service_sends_the_security_headers(launch, tmp_path: Path):
    assert {"cache-control", "x-content-type-options", "x-frame-options"} <= EXPECTED.keys()
    for service, path in LISTS.items():
        extra = {"photo_dir": str(tmp_path / "photos")} if service == "inspection" else {}
        async with launch(service, **extra) as svc:
            async with svc.client(ADMIN) as http:
                ok = await http.get(path)
                assert ok.status_code == 200, ok.text
                assert_secured(ok)
                invalid = await http.get(path, params={"limit": "many"})
                missing = await http.get("/v1/no-such-thing")
                docs = await http.get("/docs")
            async with svc.client() as anonymous:
                unauthorized = await anonymous.get(path)
            for problem, status in ((invalid, 422), (missing, 404), (unauthorized, 401)):
                assert problem.status_code == status, (service, problem.text)
                assert problem.headers["content-type"] == "application/problem+json"
                assert_secured(problem)
            # The docs page still loads Swagger UI: only framing is ruled out there.
            assert docs.status_code == 200 and "swagger-ui" in docs.text
            assert_secured(docs, HTML_CSP)
