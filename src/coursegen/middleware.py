"""ASGI middleware that guards every request: body size, unexpected errors and headers."""

from __future__ import annotations

import logging

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coursegen.errors import PayloadTooLarge
from coursegen.logs import shorten

logger = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
TOO_LARGE = f"the body is over {MAX_BODY // 1024} KiB"

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def error_response(
    message: str, status: int, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class BodyLimit:
    """Refuse request bodies over MAX_BODY with a JSON 413, declared or streamed.

    (Starlette's own limit answers in plain text.) A declared Content-Length over
    the limit is refused before anything runs; a body without one is counted as
    the handler reads it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit():
                    return await error_response("the Content-Length header is not a number", 400)(
                        scope, receive, send
                    )
                if int(value) > MAX_BODY:
                    return await error_response(TOO_LARGE, 413)(scope, receive, send)
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY:
                    raise PayloadTooLarge(TOO_LARGE)
            return message

        await self.app(scope, receive_within_limit, send)


class SecurityHeaders:
    """Headers that keep the page and its content from being framed or reinterpreted."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.headers = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.headers]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class ServerErrors:
    """Answer an unexpected exception with a JSON 500 that says nothing of it, and log it.

    Starlette's own handler for `Exception` runs in its outermost layer, outside every
    middleware added, so its 500 would go out without the security headers: this one
    sits inside SecurityHeaders. An exception after the answer began cannot change the
    status; it goes on to the server, which closes the connection.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def send_noting_start(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_noting_start)
        except Exception:
            if started:
                raise
            logger.exception("unexpected error on %s %s", scope["method"], shorten(scope["path"]))
            response = error_response("internal error; the server log has the details", 500)
            await response(scope, receive, send)
