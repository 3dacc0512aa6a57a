"""RFC 9457 problem details: the one error shape every service answers with."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("gridgov.errors")

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


def problem_type(slug: str) -> str:
    # A URN keeps the type stable and resolvable without naming a host.
    return f"urn:gridgov:problem:{slug}"


class Problem(Exception):
    """Raise anywhere (domain or web layer) to answer a problem+json response."""

    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail
        self.title = title or _TITLES.get(status, "Error")
        self.headers = headers or {}
        self.extensions = extensions

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": problem_type(self.slug),
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extensions)
        return body


def not_found(what: str, ident: object) -> Problem:
    return Problem(404, "not-found", f"{what} {ident} does not exist")


def conflict(slug: str, detail: str, **ext: Any) -> Problem:
    return Problem(409, slug, detail, **ext)


def invalid(slug: str, detail: str, **ext: Any) -> Problem:
    return Problem(422, slug, detail, **ext)


def problem_response(problem: Problem, instance: str | None = None) -> JSONResponse:
    return JSONResponse(
        problem.body(instance),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers,
    )


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        message = err.get("msg", "invalid")
        if err.get("type") == "json_invalid" and err.get("ctx"):
            message = f"not valid JSON ({err['ctx'].get('error')})"  # FastAPI says only "error"
        errors.append(
            {
                "field": ".".join(loc),
                "message": message,
                "code": err.get("type", "invalid"),
            }
        )
    return errors


# SQLSTATEs of a server that cannot be reached (class 08) or is starting up or shutting down
# (57P01-57P03); the driver raises them as they are while connecting, e.g. asyncpg's
# CannotConnectNowError right after PostgreSQL restarted.
UNAVAILABLE_SQLSTATES = ("08", "57P")


def database_unavailable(exc: BaseException) -> bool:
    """A lost or refused database connection (or SQLite busy past its timeout), not a bug."""
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate.startswith(UNAVAILABLE_SQLSTATES):
        return True
    return isinstance(exc, ConnectionError)


def _unreadable_body(cause: BaseException) -> str:
    if isinstance(cause, UnicodeDecodeError):
        return "the request body is not valid UTF-8: send JSON encoded as UTF-8"
    if isinstance(cause, RecursionError):
        return "the JSON body is nested too deeply to read: send a flatter document"
    return "the request body could not be read: send a JSON document encoded as UTF-8"


def unstorable_value(exc: BaseException) -> bool:
    """A request value the database cannot hold: a whole number past its column's range
    (SQLite raises OverflowError), text with a NUL character or any other SQLSTATE class 22
    "data exception" (PostgreSQL). The caller's input, not a bug."""
    if isinstance(exc, OverflowError):
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None) if isinstance(exc, DBAPIError) else None
    return isinstance(sqlstate, str) and sqlstate.startswith("22")


def install_error_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(exc, request.url.path)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = _field_errors(exc)
        first = errors[0] if errors else {"field": "", "message": "invalid"}
        detail = f"{first['field'] or 'request'}: {first['message']}"
        if len(errors) > 1:
            detail += f" (and {len(errors) - 1} more)"
        return problem_response(
            Problem(422, "validation-error", detail, title="Invalid request", errors=errors),
            request.url.path,
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "")
        if exc.status_code == 400 and exc.__cause__ is not None:
            # FastAPI could not parse the body; its own detail does not say why.
            slug, detail = "malformed-body", _unreadable_body(exc.__cause__)
        elif detail in ("Not Found", "Method Not Allowed"):  # Starlette's routing, no route
            detail = f"no {request.method} {request.url.path} here; the API is at /docs"
        return problem_response(
            Problem(exc.status_code, slug, detail, headers=dict(exc.headers or {})),
            request.url.path,
        )

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        if database_unavailable(exc):
            # The database is restarting or unreachable: the caller should retry, and nothing
            # was written (the transaction did not commit).
            log.warning("database unavailable: %r", exc, extra={"path": request.url.path})
            return problem_response(
                Problem(
                    503,
                    "database-unavailable",
                    "The database is unavailable for a moment; retry the request.",
                    headers={"Retry-After": "2"},
                ),
                request.url.path,
            )
        if unstorable_value(exc):
            log.info("unstorable value: %r", exc, extra={"path": request.url.path})
            return problem_response(
                Problem(
                    422,
                    "value-not-storable",
                    "a value in the request cannot be stored: whole numbers must lie within "
                    "±2147483647, text must not contain NUL (\\u0000) characters and dates "
                    "must lie within years 1-9999; correct it and retry",
                ),
                request.url.path,
            )
        # Never a stack trace to the client: log it with the request id, answer a bare 500.
        log.exception("unhandled error", extra={"path": request.url.path})
        return problem_response(
            Problem(500, "internal-error", "An internal error occurred; it has been logged."),
            request.url.path,
        )

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
    # Also answered inside the app (a handler for Exception runs only in the outermost layer,
    # which then re-raises): a 422 or 503 for the caller's value or a database restart is
    # not a crash to log with a traceback twice.
    app.add_exception_handler(DBAPIError, on_unexpected)
    app.add_exception_handler(OverflowError, on_unexpected)
