"""Requests every service refuses before a route sees them, each with a problem+json answer
whose detail says what to send instead.

- A body larger than the service's limit: 413, without reading it when it declares its length
  (``Content-Length``), and as soon as the limit is passed when it streams (chunked), so a
  huge body never sits in memory.
- A body in a media type no route accepts (anything but JSON or a form, multipart/form-data
  for uploads): 415.
- A NUL character in the path, the query, a JSON body's text or a urlencoded form: 422.
  PostgreSQL cannot store one in text, SQLite can; refusing it here gives one answer on both.
"""

from __future__ import annotations

import re

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import Problem, problem_response

UPLOAD = "multipart/form-data"
FORM = "application/x-www-form-urlencoded"
_WITH_BODY = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# JSON's escape for NUL, unless its backslash is itself escaped (``\\u0000`` is plain text).
_NUL_IN_JSON = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_NUL_IN_FORM = re.compile(rb"%00")
_SEAM = 16  # bytes kept from the previous chunk, so an escape split across chunks is found


class _Refused(Exception):
    """Raised from ``receive`` once the body being read must be refused."""


class RequestGuard:
    def __init__(self, app: ASGIApp, max_body_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope["query_string"]
        if "\x00" in scope["path"] or b"%00" in query or b"\x00" in query:
            await _answer(scope, receive, send, nul_character("the URL"))
            return
        if scope["method"] not in _WITH_BODY:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
        length = headers.get("content-length")
        has_body = "transfer-encoding" in headers or (length is not None and length != "0")
        if has_body and media_type and not _accepted(media_type):
            await _answer(scope, receive, send, unsupported_media_type(media_type))
            return
        limit = self.max_upload_bytes if media_type == UPLOAD else self.max_body_bytes
        if length is not None and length.isdigit() and int(length) > limit:
            await _answer(scope, receive, send, too_large(limit, media_type))
            return

        # A multipart upload is not scanned: photo bytes are not text.
        nul = _NUL_IN_FORM if media_type == FORM else None if media_type == UPLOAD else _NUL_IN_JSON
        received = 0
        seam = b""
        refusal: Problem | None = None
        answered = False

        async def guarded_receive() -> Message:
            nonlocal received, seam, refusal
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                received += len(chunk)
                if received > limit:
                    refusal = too_large(limit, media_type)
                elif nul is not None and nul.search(seam + chunk):
                    refusal = nul_character("the body")
                if refusal is not None:
                    raise _Refused
                seam = chunk[-_SEAM:]
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal answered
            if refusal is None:
                await send(message)
            elif not answered:
                # Whatever the route made of the cut-off body (FastAPI says 400), the answer
                # is the refusal.
                answered = True
                await _answer(scope, receive, send, refusal)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except _Refused:
            pass  # read outside a route (e.g. by the Idempotency-Key middleware)
        if refusal is not None and not answered:
            await _answer(scope, receive, send, refusal)


def _accepted(media_type: str) -> bool:
    return media_type in ("application/json", UPLOAD, FORM) or media_type.endswith("+json")


def unsupported_media_type(media_type: str) -> Problem:
    return Problem(
        415,
        "unsupported-media-type",
        f"Content-Type {media_type!r} is not accepted: send the body as application/json "
        f"(photo uploads as {UPLOAD})",
    )


def too_large(limit: int, media_type: str) -> Problem:
    hint = (
        "send fewer or smaller (compressed) photos per request"
        if media_type == UPLOAD
        else "split a bulk request into several smaller ones"
    )
    return Problem(
        413, "payload-too-large", f"the request body exceeds {limit} bytes; {hint}", limit=limit
    )


def nul_character(where: str) -> Problem:
    return Problem(
        422,
        "nul-character",
        f"{where} contains a NUL character (%00 or \\u0000), which no text may hold; remove it",
    )


async def _answer(scope: Scope, receive: Receive, send: Send, problem: Problem) -> None:
    await problem_response(problem, scope["path"])(scope, receive, send)
