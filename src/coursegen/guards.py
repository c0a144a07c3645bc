"""Keep other websites from driving the service through its user's browser.

Three checks, in the order a request meets them:
- the `Host` must be one this service answers to, or a page on a name its owner
  rebinds to 127.0.0.1 could read and write everything (DNS rebinding);
- a write (POST, PATCH, PUT, DELETE) from a browser must come from the service's own
  origin or an allowed one: browsers send `Origin` on every cross-origin write, and
  `Sec-Fetch-Site: cross-site` where they know better;
- a write's body must be declared `application/json`, which no form and no "simple"
  cross-origin request can do, so any other site would have to pass a CORS preflight,
  and preflights get an answer only for the allowed origins.
Clients that send no `Origin` (curl, the CLI, SDKs) are not browsers and pass.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coursegen.middleware import error_response
from coursegen.settings import Settings, normalise_origin

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})
_PREFLIGHT_HEADERS = "Authorization, Content-Type, Idempotency-Key, Last-Event-ID"
_PREFLIGHT_MAX_AGE = "600"


def allowed_hosts(settings: Settings) -> tuple[str, ...]:
    """The loopback names, the bind host (unless it is a wildcard address) and any added."""
    bind = settings.host.lower()
    if ":" in bind and not bind.startswith("["):
        bind = f"[{bind}]"
    extra = () if bind in ("0.0.0.0", "[::]") else (bind,)
    return tuple(dict.fromkeys((*LOOPBACK_HOSTS, *extra, *settings.allowed_hosts)))


def host_name(host: str) -> str:
    """The name in a Host header, without its port."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rpartition(":")[0] if ":" in host else host


class HostGuard:
    """Answer 400 to a request whose Host this service does not answer to."""

    def __init__(self, app: ASGIApp, hosts: tuple[str, ...]) -> None:
        self.app = app
        self.any = "*" in hosts
        self.exact = frozenset(h for h in hosts if not h.startswith("*."))
        self.suffixes = tuple(h[1:] for h in hosts if h.startswith("*."))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.any:
            return await self.app(scope, receive, send)
        name = host_name(Headers(scope=scope).get("host", ""))
        if name in self.exact or (name and name.endswith(self.suffixes)):
            return await self.app(scope, receive, send)
        shown = name[:100] or "(none)"
        response = error_response(
            f"this server does not answer to the host name {shown!r}; if that name is "
            "yours, add it to COURSEGEN_ALLOWED_HOSTS",
            400,
        )
        await response(scope, receive, send)


class OriginGuard:
    """Refuse cross-site writes (403) and non-JSON bodies (415); CORS for allowed origins."""

    def __init__(self, app: ASGIApp, origins: tuple[str, ...]) -> None:
        self.app = app
        self.origins = frozenset(origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        method: str = scope["method"]
        origin = headers.get("origin")
        listed = origin is not None and normalise_origin(origin) in self.origins
        preflight = method == "OPTIONS" and "access-control-request-method" in headers
        if preflight and origin is not None:
            return await self._preflight(scope, receive, send, origin, listed)
        if method in WRITES:
            refusal = self._refusal(scope, headers, origin, listed)
            if refusal is not None:
                return await refusal(scope, receive, send)
        if not listed:
            return await self.app(scope, receive, send)
        assert origin is not None

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                cors = [(b"access-control-allow-origin", origin.encode("latin-1")),
                        (b"vary", b"Origin")]  # fmt: skip
                message = {**message, "headers": [*message.get("headers", []), *cors]}
            await send(message)

        await self.app(scope, receive, send_with_cors)

    def _refusal(
        self, scope: Scope, headers: Headers, origin: str | None, listed: bool
    ) -> JSONResponse | None:
        if origin is not None and not listed and not _same_origin(scope, headers, origin):
            return error_response(
                f"writes from the web page at {origin[:200]!r} are not allowed; if that site "
                "is yours, add it to COURSEGEN_ALLOWED_ORIGINS",
                403,
            )
        if headers.get("sec-fetch-site") == "cross-site" and not listed:
            return error_response(
                "writes from another website are not allowed; if that site is yours, add its "
                "origin to COURSEGEN_ALLOWED_ORIGINS",
                403,
            )
        content_type = headers.get("content-type")
        if content_type is None:
            if _has_body(headers):
                return error_response(_SEND_JSON, 415)
            return None
        if content_type.partition(";")[0].strip().lower() != "application/json":
            return error_response(_SEND_JSON, 415)
        return None

    async def _preflight(
        self, scope: Scope, receive: Receive, send: Send, origin: str, listed: bool
    ) -> None:
        if not listed:
            refused = error_response(
                f"cross-origin requests from {origin[:200]!r} are not allowed; if that site "
                "is yours, add it to COURSEGEN_ALLOWED_ORIGINS",
                403,
            )
            return await refused(scope, receive, send)
        response = Response(
            status_code=204,
            headers={
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": "GET, POST, PATCH, PUT, DELETE",
                "Access-Control-Allow-Headers": _PREFLIGHT_HEADERS,
                "Access-Control-Max-Age": _PREFLIGHT_MAX_AGE,
                "Vary": "Origin",
            },
        )
        await response(scope, receive, send)


_SEND_JSON = "send the body as JSON, with the header 'Content-Type: application/json'"


def _has_body(headers: Headers) -> bool:
    length = headers.get("content-length")
    return "transfer-encoding" in headers or (length is not None and length.strip() != "0")


def _same_origin(scope: Scope, headers: Headers, origin: str) -> bool:
    """Whether `Origin` names this very service, as the browser reached it."""
    host = headers.get("host")
    if host is None:
        return False
    return normalise_origin(origin) == normalise_origin(f"{scope.get('scheme', 'http')}://{host}")
