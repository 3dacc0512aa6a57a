"""Property-based fuzzing of every service's OpenAPI document (schemathesis) on the real platform.

Each service runs on a real uvicorn server with its real database and the test's real broker
(the ``platform`` fixture: the small city and its departments exist, so real grid codes and
department ids are there to find). Schemathesis generates requests from the service's own
OpenAPI document, valid ones and invalid ones, and every answer must hold to that document:
no 5xx, a documented status code, a documented content type, a body matching the documented
schema, documented headers; and invalid input must be refused (a 4xx).

It runs with an admin token and with a scoped read-only token (roles and scopes refused).
The number of examples per operation is bounded for CI and the generation is deterministic
(derandomized), so a failure in CI reproduces locally. Run it longer locally with e.g.
``GRIDGOV_FUZZ_EXAMPLES=200 .venv/bin/pytest tests/test_fuzz_openapi.py``.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gridgov_common.testing import token_for

from .conftest import Platform

EXAMPLES = int(os.environ.get("GRIDGOV_FUZZ_EXAMPLES", "8"))

CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
CHECKS = {
    GenerationMode.POSITIVE: CONFORMANCE,
    GenerationMode.NEGATIVE: [*CONFORMANCE, negative_data_rejection],
}

ADMIN = token_for(roles=["admin"], scopes=["440306"], subject="fuzz-admin")
# May read one street, write nothing: the 403 and out-of-scope answers get fuzzed too.
VIEWER = token_for(roles=["viewer"], scopes=["440306001"], subject="fuzz-viewer")

# Schemathesis's strategies use the `random` module; Hypothesis seeds it (derandomize) anyway.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")


@pytest.mark.parametrize("service", ["grid", "inspection", "population", "notify"])
async def test_every_answer_holds_to_the_openapi_document(platform: Platform, service: str) -> None:
    url = getattr(platform, service).url
    # Blocking HTTP in a worker thread: the services serve on this test's event loop.
    failures: list[str] = []
    for who, token, examples in (("admin", ADMIN, EXAMPLES), ("viewer", VIEWER, EXAMPLES // 4)):
        calls = await asyncio.to_thread(fuzz, url, who, token, max(2, examples), failures)
        print(f"{service}-svc, {who}: {calls} requests, {len(failures)} failures so far")
    assert not failures, f"{len(failures)} failures:\n\n" + "\n\n".join(failures)


def fuzz(base_url: str, who: str, token: str, examples: int, failures: list[str]) -> int:
    """Fuzz every operation of the service at ``base_url``, adding the failures found to
    ``failures``; return the number of requests sent."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    calls = 0

    def count(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1

    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {token}"
        session.hooks["response"].append(count)
        for result in schema.get_all_operations():
            operation = result.ok()
            for mode, checks in CHECKS.items():
                if mode is GenerationMode.NEGATIVE and not negatable(operation):
                    continue
                test = fuzz_test(operation, mode, checks, base_url, session, examples)
                try:
                    test()
                except Unsatisfiable:
                    pass  # no invalid input exists for this operation
                except (Exception, BaseExceptionGroup) as exc:  # a FailureGroup is the latter
                    failures.append(f"{operation.label} [{who}, {mode.value}]\n{exc}")
    return calls


def fuzz_test(
    operation: Any,
    mode: GenerationMode,
    checks: list[Any],
    base_url: str,
    session: requests.Session,
    examples: int,
) -> Any:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples,
        derandomize=True,  # the same cases on every run: a CI failure reproduces locally
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    def run(case: Any) -> None:
        case.call_and_validate(base_url=base_url, session=session, checks=checks, timeout=30)

    return run


def negatable(operation: Any) -> bool:
    """Whether invalid input exists for ``operation`` (a body, or a parameter with a type or a
    constraint): searching for it where none exists costs seconds per operation."""
    return bool(operation.body) or any(
        _constrained(p.definition.get("schema", {})) for p in operation.iter_parameters()
    )


def _constrained(schema: dict[str, Any]) -> bool:
    if "anyOf" in schema:
        return any(_constrained(s) for s in schema["anyOf"] if s.get("type") != "null")
    limits = {"pattern", "format", "enum", "const", "minLength", "maxLength"}
    return schema.get("type") != "string" or bool(limits & schema.keys())
