"""The request guard and the documented problem answers, on the small test service."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gridgov_common.settings import ServiceSettings
from gridgov_common.testing import RunningService, token_for

TOKEN = token_for(roles=["admin"], scopes=["440306"])
P = "urn:gridgov:problem:"
LIMIT = 4096


@pytest.fixture
def settings(settings: ServiceSettings) -> ServiceSettings:
    return settings.model_copy(update={"max_body_bytes": LIMIT})


async def chunks(n: int, size: int = 1024) -> AsyncIterator[bytes]:
    yield b'{"id": "big", "text": "'
    for _ in range(n):
        yield b"x" * size
    yield b'"}'


async def test_a_body_over_the_limit_is_413_declared_or_streamed_with_or_without_a_key(
    svc: RunningService,
):
    big = b'{"id": "big", "text": "' + b"x" * LIMIT + b'"}'
    async with svc.client(TOKEN) as http:
        for headers in ({}, {"Idempotency-Key": "k1"}):  # the key's middleware reads the body
            for content in (big, chunks(8)):
                r = await http.post(
                    "/v1/notes",
                    content=content,
                    headers={"content-type": "application/json", **headers},
                )
                assert r.status_code == 413, r.text
                assert r.headers["content-type"] == "application/problem+json"
                assert r.json()["type"] == P + "payload-too-large"
                assert f"{LIMIT} bytes" in r.json()["detail"]
        # Under the limit, streamed: accepted.
        r = await http.post(
            "/v1/notes", content=chunks(3, size=300), headers={"content-type": "application/json"}
        )
        assert r.status_code == 201, r.text


async def test_a_nul_in_json_text_is_422_and_only_a_real_nul(svc: RunningService):
    async def split() -> AsyncIterator[bytes]:  # the escape cut in two by the chunking
        yield b'{"id": "n1", "text": "abc\\u00'
        yield b'00"}'

    cases = [
        (rb"a\u0000b", True),
        (rb"a\\u0000b", False),  # an escaped backslash, then the letters u0000
        (rb"a\\\u0000b", True),  # an escaped backslash, then NUL
        (rb"a\u0041b", False),
    ]
    async with svc.client(TOKEN) as http:
        for i, (text, refused) in enumerate(cases):
            body = b'{"id": "n%d", "text": "%s"}' % (i + 2, text)
            r = await http.post(
                "/v1/notes", content=body, headers={"content-type": "application/json"}
            )
            if refused:
                assert r.status_code == 422 and r.json()["type"] == P + "nul-character", text
            else:
                assert r.status_code == 201, (text, r.text)
        r = await http.post(
            "/v1/notes", content=split(), headers={"content-type": "application/json"}
        )
        assert r.status_code == 422 and r.json()["type"] == P + "nul-character", r.text


async def test_every_operation_documents_its_problem_answers(svc: RunningService):
    async with svc.client() as http:
        doc = (await http.get("/openapi.json")).json()
    responses = doc["paths"]["/v1/notes"]["post"]["responses"]
    assert sorted(responses) == sorted(
        ["201", "400", "401", "403", "404", "409", "413", "415", "422", "429", "503"]
    )
    for status, response in responses.items():
        if status != "201":
            assert response["content"] == {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            }, status
    assert "Retry-After" in responses["503"]["headers"]
    schemas = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas  # FastAPI's own 422 shape, which nobody answers
    assert schemas["Problem"]["required"] == ["type", "title", "status", "detail"]
    assert "401" not in doc["paths"]["/healthz"]["get"]["responses"]  # no token needed there
