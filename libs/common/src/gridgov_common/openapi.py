"""The error answers in every service's OpenAPI document, documented once for all routes.

Every error is an RFC 9457 problem+json body (``errors.py``), but FastAPI documents none of
them, and documents its own 422 shape, which no service answers. The app factory calls
:func:`document_problems`, which adds to each API operation the problem answers it can give
(with one shared ``Problem`` schema) so clients and generated tests see the real contract.
A route documents an extra error status of its own with just a description
(``responses={507: {"description": "..."}}``); its body is documented as a problem here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from .errors import PROBLEM_JSON
from .ratelimit import WRITE_METHODS

# When each answer happens, as a client reads it in the document.
ANY_CALL = {
    401: "The bearer token is missing, expired or not valid.",
    403: "The token's roles or region scopes do not allow this.",
    404: "The resource, or one the request refers to, does not exist or is outside your scopes.",
    422: "The request is not valid; `errors[]` names each field and what is wrong with it.",
    503: "The database or a service this call needs is unavailable; retry after `Retry-After`.",
}
WRITE_CALL = {
    409: "The request conflicts with the current state, or an earlier request with the same "
    "`Idempotency-Key` is still running (retry after `Retry-After`).",
    429: "Too many writes with this token; retry after `Retry-After` seconds.",
}
WITH_BODY = {
    400: "The body could not be read: not valid JSON or not UTF-8.",
    413: "The body is larger than this service accepts.",
    415: "The body's Content-Type is not one this operation accepts.",
}
POST_CALL = {400: "The `Idempotency-Key` header is malformed."}
RETRY_AFTER = {429, 503}

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details. Extension members may follow.",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {
            "type": "string",
            "description": "Stable error type, `urn:gridgov:problem:<slug>`.",
        },
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "description": "What went wrong and what to fix."},
        "instance": {"type": "string", "description": "The request path."},
        "errors": {
            "type": "array",
            "description": "Validation errors, one per field.",
            "items": {
                "type": "object",
                "required": ["field", "message", "code"],
                "properties": {
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                    "code": {"type": "string"},
                },
            },
        },
    },
    "additionalProperties": True,
}
_REF = {"$ref": "#/components/schemas/Problem"}
# FastAPI's own 422 shape, unused once every 422 is documented as a problem.
_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")


def document_problems(app: FastAPI, api_routes: Iterable[BaseRoute]) -> None:
    """Make ``app``'s OpenAPI document list the problem answers of ``api_routes``."""
    routes = [r for r in api_routes if isinstance(r, APIRoute) and r.include_in_schema]
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            add_problems(generate(), routes)  # generate() caches the dict it returns
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]


def add_problems(schema: dict[str, Any], routes: list[APIRoute]) -> None:
    schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for route in routes:
        for method in sorted(route.methods or ()):
            operation = schema["paths"][route.path_format][method.lower()]
            responses = operation.setdefault("responses", {})
            for status, description in problem_statuses(route, method).items():
                response = responses.setdefault(str(status), {"description": description})
                if response.get("description") == "Validation Error":  # FastAPI's wording
                    response["description"] = description
            operation["responses"] = responses = dict(sorted(responses.items()))
            for status, response in responses.items():
                if status[0] in "45":
                    response["content"] = {PROBLEM_JSON: {"schema": _REF}}
                    if int(status) in RETRY_AFTER:
                        response["headers"] = {
                            "Retry-After": {
                                "description": "Seconds to wait before retrying.",
                                "schema": {"type": "string"},
                            }
                        }
    text = repr(schema["paths"])
    for name in _FASTAPI_VALIDATION:
        if f"#/components/schemas/{name}" not in text:
            schema["components"]["schemas"].pop(name, None)


def problem_statuses(route: APIRoute, method: str) -> dict[int, str]:
    """The problem answers an API operation can give (every one needs a token)."""
    statuses = dict(ANY_CALL)
    if method in WRITE_METHODS:
        statuses.update(WRITE_CALL)
    if route.body_field is not None:
        statuses.update(WITH_BODY)
    if method == "POST":
        statuses[400] = " ".join(filter(None, (statuses.get(400), POST_CALL[400])))
    return dict(sorted(statuses.items()))
