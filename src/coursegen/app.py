"""The application factory: routes, lifespan, error rendering and response headers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coursegen import api, streams
from coursegen.errors import AppError, PayloadTooLarge
from coursegen.events import Broker
from coursegen.jobs import JobRunner
from coursegen.providers import Provider, make_provider
from coursegen.resources import static_dir
from coursegen.services import Services
from coursegen.settings import Settings
from coursegen.store import Store

logger = logging.getLogger(__name__)

MAX_BODY = 64 * 1024

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}

_HTTP_ERRORS = {
    404: "no such page or endpoint",
    405: "this method is not allowed here",
    413: f"the body is over {MAX_BODY // 1024} KiB",
}


def create_app(settings: Settings, *, provider: Provider | None = None) -> Starlette:
    """Build the app; the lifespan opens the database and starts the job runner.

    A given `provider` belongs to the caller, who closes it; otherwise the settings
    choose one and the app closes it on shutdown.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        broker = Broker()
        store = await Store.open(settings.db_path, broker)
        own_provider = provider is None
        chosen = provider if provider is not None else make_provider(settings)
        runner = JobRunner(store, chosen, settings)
        services = Services(settings, store, broker, chosen, runner, anyio.Event())
        app.state.services = services  # for tests and tools that hold the app
        closer = asyncio.create_task(_close_streams_on_exit(services))
        try:
            if chosen.name == "demo":
                logger.warning(
                    "no ANTHROPIC_API_KEY: running on the offline demo provider; "
                    "courses are sample content, not written by a model"
                )
            else:
                logger.info("writing courses with %s through the Anthropic API", chosen.model)
            await runner.start()
            yield {"services": services}
        finally:
            closer.cancel()
            await runner.close()
            broker.close()
            await store.close()
            if own_provider:
                await chosen.aclose()

    api_routes = [
        Route("/courses/generate", api.generate, methods=["POST"]),
        Route("/courses", api.list_courses, methods=["GET"]),
        Route("/courses/{id:int}", api.get_course, methods=["GET"]),
        Route("/courses/{id:int}", api.delete_course, methods=["DELETE"]),
        Route("/lessons/{id:int}", api.get_lesson, methods=["GET"]),
        Route("/lessons/{id:int}/retry", api.retry_lesson, methods=["POST"]),
        Route("/jobs/{job_id}/progress", api.job_progress, methods=["GET"]),
        Route("/jobs/{job_id}/retry", api.retry_job, methods=["POST"]),
        Route("/jobs/{job_id}/cancel", api.cancel_job, methods=["POST"]),
        Route("/jobs/{job_id}/events", streams.job_events, methods=["GET"]),
        Route("/events", streams.all_events, methods=["GET"]),
        Route("/health", api.health, methods=["GET"]),
    ]
    routes = [
        # A router of its own, so a wrong method under /api/ is a 405, not the page's 404.
        Mount("/api", routes=api_routes),
        Mount("/", StaticFiles(directory=static_dir(), html=True), name="static"),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            AppError: _app_error,
            HTTPException: _http_error,
            Exception: _server_error,
        },
    )
    app.add_middleware(_BodyLimit)
    app.add_middleware(_SecurityHeaders)
    return app


async def _close_streams_on_exit(services: Services) -> None:
    await services.streams_closing.wait()
    services.broker.close()


def _error(message: str, status: int, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def _app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    return _error(exc.message, exc.status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = _HTTP_ERRORS.get(exc.status_code, exc.detail)
    if exc.status_code == 405 and exc.headers and "Allow" in exc.headers:
        message = f"{request.method} is not allowed here; use {exc.headers['Allow']}"
    return _error(message, exc.status_code, dict(exc.headers or {}))


async def _server_error(request: Request, exc: Exception) -> Response:
    logger.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error("internal error; the server log has the details", 500)


class _BodyLimit:
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
                    return await _error("the Content-Length header is not a number", 400)(
                        scope, receive, send
                    )
                if int(value) > MAX_BODY:
                    return await _error(_HTTP_ERRORS[413], 413)(scope, receive, send)
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY:
                    raise PayloadTooLarge(_HTTP_ERRORS[413])
            return message

        await self.app(scope, receive_within_limit, send)


class _SecurityHeaders:
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
