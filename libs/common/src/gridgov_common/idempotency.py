"""``Idempotency-Key`` for POSTs: a retried request returns the first response, once.

Keys are scoped to the authenticated caller. Same key + same body replays the stored response
(with ``Idempotent-Replayed: true``); same key + a different body is a 422; a retry that arrives
while the first is still running gets a 409 with ``Retry-After``. Responses of 5xx are not
stored, so the client's retry runs the request again. A key whose first attempt died mid-way
(a crash) can be retried after ``stale_after``.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import scope_principal
from .db import utcnow
from .errors import Problem, problem_response

MAX_KEY_LENGTH = 255


class IdempotencyMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        stale_after: timedelta = timedelta(seconds=60),
        max_body_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.app = app
        self.stale_after = stale_after
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        key = headers.get(b"idempotency-key", b"").decode(errors="replace").strip()
        if not key:
            await self.app(scope, receive, send)
            return
        if len(key) > MAX_KEY_LENGTH or not key.isprintable():
            await _send_problem(
                scope,
                receive,
                send,
                Problem(
                    400,
                    "invalid-idempotency-key",
                    f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable characters",
                ),
            )
            return
        principal = await self._principal(scope)
        if principal is None:
            await self.app(scope, receive, send)  # the route answers 401 itself
            return

        body, more = await _read_body(receive, self.max_body_bytes)
        if more:
            await _send_problem(
                scope,
                receive,
                send,
                Problem(
                    413, "payload-too-large", f"request body exceeds {self.max_body_bytes} bytes"
                ),
            )
            return
        digest = _fingerprint(scope, headers.get(b"content-type", b""), body)

        ctx = scope["app"].state.ctx
        table = ctx.tables.idempotency
        match = (table.c.principal == principal, table.c.key == key)
        claimed = await self._claim(ctx, table, principal, key, digest)
        if not claimed:
            async with ctx.db.sessions() as session:
                row = (await session.execute(select(table).where(*match))).one_or_none()
            if row is None:
                # Finished and swept between our two reads: treat as a retry in progress.
                await _send_problem(scope, receive, send, _in_progress())
                return
            if row.request_hash != digest:
                await _send_problem(
                    scope,
                    receive,
                    send,
                    Problem(
                        422,
                        "idempotency-key-reused",
                        "this Idempotency-Key was already used with a different request body; "
                        "use a new key for a new request",
                    ),
                )
                return
            if row.status_code is not None:
                await _replay(send, row)
                return
            await _send_problem(scope, receive, send, _in_progress())
            return

        # The response is held back until it is stored: a client that retries the moment it
        # sees the first answer must find it replayable, not "in progress".
        start: Message | None = None
        chunks = bytearray()

        async def replay_receive() -> Message:
            nonlocal body
            chunk, body = body, b""
            return {"type": "http.request", "body": chunk, "more_body": False}

        async def capture_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.extend(message.get("body", b""))

        try:
            await self.app(scope, replay_receive, capture_send)
        except BaseException:
            async with ctx.db.transaction() as session:
                await session.execute(delete(table).where(*match))
            raise
        status = start["status"] if start else 500
        async with ctx.db.transaction() as session:
            if status >= 500:
                await session.execute(delete(table).where(*match))
            else:
                hdrs = {k.lower(): v for k, v in (start or {}).get("headers", [])}
                await session.execute(
                    update(table)
                    .where(*match)
                    .values(
                        status_code=status,
                        content_type=hdrs.get(b"content-type", b"").decode() or None,
                        location=hdrs.get(b"location", b"").decode() or None,
                        body=bytes(chunks),
                    )
                )
        if start is not None:
            await send(start)
            await send({"type": "http.response.body", "body": bytes(chunks)})

    async def _principal(self, scope: Scope) -> str | None:
        principal = await scope_principal(scope)
        return None if principal is None else str(principal.subject)

    async def _claim(self, ctx: Any, table: Any, principal: str, key: str, digest: str) -> bool:
        """Insert the key as in-progress; take over a stale unfinished one. True if ours."""
        now = utcnow()
        try:
            async with ctx.db.transaction() as session:
                await session.execute(
                    table.insert().values(
                        principal=principal, key=key, request_hash=digest, started_at=now
                    )
                )
            return True
        except IntegrityError:
            pass
        async with ctx.db.transaction() as session:
            result = await session.execute(
                update(table)
                .where(
                    table.c.principal == principal,
                    table.c.key == key,
                    table.c.request_hash == digest,
                    table.c.status_code.is_(None),
                    table.c.started_at < now - self.stale_after,
                )
                .values(started_at=now)
            )
            return bool(result.rowcount)


def _fingerprint(scope: Scope, content_type: bytes, body: bytes) -> str:
    """Hash of what the request means. A multipart retry is built with a new random boundary,
    so the boundary is taken out: the same parts in the same order are the same request."""
    _, _, boundary = content_type.partition(b"boundary=")
    boundary = boundary.split(b";")[0].strip(b'" ')
    if content_type.startswith(b"multipart/") and boundary:
        body = body.replace(boundary, b"")
    return hashlib.sha256(
        scope["method"].encode() + b" " + scope["path"].encode() + b"\n" + body
    ).hexdigest()


def _in_progress() -> Problem:
    return Problem(
        409,
        "idempotent-request-in-progress",
        "a request with this Idempotency-Key is still being processed; retry shortly",
        headers={"Retry-After": "1"},
    )


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    chunks = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.extend(message.get("body", b""))
        if len(chunks) > limit:
            return b"", True
        if not message.get("more_body", False):
            break
    return bytes(chunks), False


async def _replay(send: Send, row: Any) -> None:
    headers = [(b"idempotent-replayed", b"true")]
    if row.content_type:
        headers.append((b"content-type", row.content_type.encode()))
    if row.location:
        headers.append((b"location", row.location.encode()))
    body = row.body or b""
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": row.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_problem(scope: Scope, receive: Receive, send: Send, problem: Problem) -> None:
    await problem_response(problem, scope["path"])(scope, receive, send)
