"""What a request may carry before any handler sees it: a bounded body, and no token in the URL.

Both are pure ASGI middleware so that they also hold for streamed (chunked) bodies and for routes
that never read their body. Starlette has a body limit of its own, but it answers in plain text and
lets a handler that does not read its body run before replacing its response; here an oversized
declared body is refused before anything runs, and errors keep FastAPI's {"detail": ...} shape.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 1 << 20  # 1 MiB: the largest legitimate body (an override for many targets) is a few KiB

# Query parameters that would carry a credential: URLs end up in proxy logs and browser history.
TOKEN_PARAMS = frozenset({"token", "access_token", "api_key", "apikey", "auth", "auth_token", "bearer"})


class BodyTooLarge(HTTPException):
    """Raised from `receive`: an HTTPException so FastAPI's body parsing passes it on as a 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"request body larger than {limit} bytes")


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _refuse(BodyTooLarge(self.max_bytes), scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await _refuse(exc, scope, receive, send)


class QueryTokenRefusal:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("query_string"):
            query = scope["query_string"].decode("latin-1")
            names = {name.lower() for name, _ in parse_qsl(query, keep_blank_values=True)}
            if names & TOKEN_PARAMS:
                refusal = HTTPException(
                    status_code=401,
                    detail="a token in the query string is never accepted: "
                    "use the Authorization header (Authorization: Bearer <token>) or the session cookie",
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await _refuse(refusal, scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _refuse(exc: HTTPException, scope: Scope, receive: Receive, send: Send) -> None:
    headers = dict(exc.headers or {})
    if exc.status_code == 413:
        headers["Connection"] = "close"  # the unread rest of the body must not be taken for a request
    response = JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)
    await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


# Ids and offsets go to SQLite / PostgreSQL as 64-bit integers: larger ones are refused with 422.
MAX_ID = 2**63 - 1
MAX_OFFSET = 2**31 - 1
