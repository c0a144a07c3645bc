"""The application factory: routes, lifespan, error rendering and response headers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route, Router
from starlette.staticfiles import StaticFiles

from coursegen import api, auth, streams
from coursegen.auth import TokenGate
from coursegen.drafts import Drafts
from coursegen.errors import AppError
from coursegen.events import Broker
from coursegen.guards import HostGuard, OriginGuard, allowed_hosts
from coursegen.jobs import JobRunner
from coursegen.logs import shorten_request_targets
from coursegen.middleware import (
    TOO_LARGE,
    BodyLimit,
    SecurityHeaders,
    ServerErrors,
    error_response,
)
from coursegen.prices import load_prices
from coursegen.providers import Provider, make_provider
from coursegen.resources import static_dir
from coursegen.services import Services
from coursegen.settings import Settings
from coursegen.store import open_store

logger = logging.getLogger(__name__)

_HTTP_ERRORS = {
    404: "no such page or endpoint",
    405: "this method is not allowed here",
    413: TOO_LARGE,
}


class RowIdConvertor(Convertor[int]):
    """`{name:id}`: a row id or version number, written as digits the usual way.

    Starlette's `int` matches any run of digits and `int()` then raises past 4,300 of
    them (a 500). This one matches at most 19 ASCII digits without a leading zero, so
    anything else (signed, padded, huge, other scripts' digits) matches no route: a 404.
    Nineteen digits may still exceed SQLite's largest integer; `parse_id` refuses those.
    """

    regex = "0|[1-9][0-9]{0,18}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(value)


register_url_convertor("id", RowIdConvertor())


def create_app(settings: Settings, *, provider: Provider | None = None) -> Starlette:
    """Build the app; the lifespan opens the database and starts the job runner.

    A given `provider` belongs to the caller, who closes it; otherwise the settings
    choose one and the app closes it on shutdown.
    """
    # Read now, so that a bad COURSEGEN_PRICES file stops the start with its reason.
    prices = load_prices(settings.prices)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        broker = Broker()
        node = node_name()
        store = await open_store(settings, broker.publish, node=node)
        broker.reset(await store.newest_event_id())
        own_provider = provider is None
        chosen = provider if provider is not None else make_provider(settings)
        drafts = Drafts()
        if store.shared:  # readers on other nodes get the text of lessons written here
            drafts.share_text = store.share_text
            store.follow_text(drafts.arrived, drafts.wanted)
        runner = JobRunner(store, chosen, settings, drafts, prices)
        if store.shared:  # a 429 on any node slows every node: they share one API key
            store.follow_rate_limits(
                lambda retry_after: runner.throttle.rate_limited(None, retry_after)
            )
        services = Services(settings, store, broker, chosen, runner, drafts, node, anyio.Event())
        app.state.services = services  # for tests and tools that hold the app
        closer = asyncio.create_task(_close_streams_on_exit(services))
        shorten_request_targets()  # now, after the server has set its logging up
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
            with contextlib.suppress(asyncio.CancelledError):
                await closer
            await runner.close()
            broker.close()
            await store.close()
            if own_provider:
                await chosen.aclose()

    api_routes = [
        Route("/courses/generate", api.generate, methods=["POST"]),
        Route("/courses", api.list_courses, methods=["GET"]),
        # One route per path, so a 405 lists every method the path has in `Allow`.
        Route("/courses/{id:id}", api.course, methods=["GET", "DELETE"]),
        Route("/courses/{id:id}/lessons", api.add_lesson, methods=["POST"]),
        Route("/courses/{id:id}/export/{format}", api.export, methods=["GET"]),
        Route("/lessons/{id:id}", api.lesson, methods=["GET", "PATCH", "DELETE"]),
        Route("/lessons/{id:id}/versions", api.lesson_versions, methods=["GET"]),
        Route("/lessons/{id:id}/versions/{n:id}", api.lesson_version, methods=["GET"]),
        Route("/lessons/{id:id}/versions/{n:id}/restore", api.restore_version, methods=["POST"]),
        Route("/lessons/{id:id}/quiz/retry", api.retry_quiz, methods=["POST"]),
        Route("/lessons/{id:id}/retry", api.retry_lesson, methods=["POST"]),
        Route("/lessons/{id:id}/prioritize", api.prioritize_lesson, methods=["POST"]),
        Route("/lessons/{id:id}/events", streams.lesson_events, methods=["GET"]),
        Route("/jobs/{job_id}/progress", api.job_progress, methods=["GET"]),
        Route("/jobs/{job_id}/retry", api.retry_job, methods=["POST"]),
        Route("/jobs/{job_id}/cancel", api.cancel_job, methods=["POST"]),
        Route("/jobs/{job_id}/events", streams.job_events, methods=["GET"]),
        Route("/events", streams.all_events, methods=["GET"]),
        Route("/health", api.health, methods=["GET"]),
        Route("/openapi.json", api.openapi, methods=["GET"]),
        Route("/session", auth.session, methods=["POST", "DELETE"]),
    ]
    # On the mount, the gate sees every API request whatever prefix a proxy adds.
    api_middleware = [Middleware(TokenGate, token=settings.api_token)] if settings.api_token else []
    routes = [
        # A router of its own, so a wrong method under /api/ is a 405, not the page's 404;
        # without slash redirects, so `/api/courses/` (an empty id) is a 404 too.
        Mount(
            "/api",
            app=Router(routes=api_routes, redirect_slashes=False),
            middleware=api_middleware,
        ),
        Mount("/", _PageFiles(directory=static_dir(), html=True), name="static"),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={AppError: _app_error, HTTPException: _http_error},
    )
    # The last added is the outermost: headers on every answer, its 500s included, then
    # who may ask at all.
    app.add_middleware(BodyLimit)
    app.add_middleware(OriginGuard, origins=settings.allowed_origins)
    app.add_middleware(HostGuard, hosts=allowed_hosts(settings))
    app.add_middleware(ServerErrors)
    app.add_middleware(SecurityHeaders)
    return app


def node_name() -> str:
    """This process's name among the nodes: its host, its pid and a random tag (a pid
    is reused after a restart, the tag is not)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class _PageFiles(StaticFiles):
    """The page's files, revalidated (ETag) on every load: after an upgrade a browser
    must not run old and new modules side by side."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


async def _close_streams_on_exit(services: Services) -> None:
    await services.streams_closing.wait()
    services.broker.close()
    services.drafts.close()


async def _app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    return error_response(exc.message, exc.status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = _HTTP_ERRORS.get(exc.status_code, exc.detail)
    if exc.status_code == 405 and exc.headers and "Allow" in exc.headers:
        message = f"{request.method} is not allowed here; use {exc.headers['Allow']}"
    return error_response(message, exc.status_code, dict(exc.headers or {}))
