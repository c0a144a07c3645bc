"""The optional API token: a bearer header, or a session cookie set by signing in.

EventSource cannot send headers, so the page signs in once and the browser then
sends an HttpOnly, SameSite=Strict cookie with every /api/ request, streams too.
The cookie holds an HMAC of the token, never the token itself.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from coursegen.errors import BadRequest, NotFound, Unauthorized
from coursegen.middleware import error_response
from coursegen.services import services_of
from coursegen.validation import read_json_object

COOKIE = "coursegen_session"
SESSION_DAYS = 30
_OPEN_PATHS = frozenset({"/session"})  # relative to the API
_NEEDS_TOKEN = (
    "this server needs its API token: send 'Authorization: Bearer <token>', or sign in on the page"
)


def session_value(token: str) -> str:
    return hmac.new(token.encode(), b"coursegen session", hashlib.sha256).hexdigest()


class TokenGate:
    """Answer 401 to any API request without the token or a valid session cookie.

    It wraps the /api mount, so it sees exactly the API's requests, behind any prefix.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.bearer = f"Bearer {token}".encode()
        self.session = session_value(token).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        relative = path[len(root) :] if path.startswith(root) else path
        if scope["type"] != "http" or relative in _OPEN_PATHS:
            return await self.app(scope, receive, send)
        if not self._allowed(scope["headers"]):
            response = error_response(_NEEDS_TOKEN, 401, {"WWW-Authenticate": "Bearer"})
            return await response(scope, receive, send)
        await self.app(scope, receive, send)

    def _allowed(self, headers: list[tuple[bytes, bytes]]) -> bool:
        for name, value in headers:
            if name == b"authorization" and hmac.compare_digest(value, self.bearer):
                return True
            if name == b"cookie":
                for part in value.split(b";"):
                    key, _, cookie = part.strip().partition(b"=")
                    if key == COOKIE.encode() and hmac.compare_digest(cookie, self.session):
                        return True
        return False


async def session(request: Request) -> Response:
    """POST signs in, DELETE signs out."""
    if request.method == "DELETE":
        return await sign_out(request)
    return await sign_in(request)


async def sign_in(request: Request) -> Response:
    """Trade the token for a session cookie, for the page (EventSource sends no headers)."""
    token = services_of(request).settings.api_token
    if not token:
        raise NotFound("sign-in is off: this server has no COURSEGEN_API_TOKEN")
    given = (await read_json_object(request)).get("token")
    if not isinstance(given, str):
        raise BadRequest('send the token as {"token": "..."}')
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise Unauthorized("that is not this server's API token")
    response = Response(status_code=204)
    response.set_cookie(
        COOKIE,
        session_value(token),
        max_age=SESSION_DAYS * 24 * 3600,
        path=_api_path(request),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def sign_out(request: Request) -> Response:
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path=_api_path(request), httponly=True, samesite="strict")
    return response


def _api_path(request: Request) -> str:
    """Where the API is, as the browser sees it: behind a proxy's prefix, if any."""
    # The /api mount's root_path holds the proxy's prefix (uvicorn --root-path) and /api.
    root: str = request.scope.get("root_path", "")
    return root if root.endswith("/api") else "/api"
