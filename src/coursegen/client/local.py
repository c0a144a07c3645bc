"""The service run inside the client's own process, for commands given no --server.

The real app is served by uvicorn on a free loopback port for as long as the command
runs, and the client talks to it over HTTP like to any other: one client, one code
path, and the app is built and shut down exactly as `coursegen serve` does it. A
random token, known only to this process, keeps other local programs out meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from collections.abc import AsyncIterator, Generator

import uvicorn
from sse_starlette.sse import AppStatus

from coursegen.app import create_app
from coursegen.client.remote import ClientError
from coursegen.settings import Settings

SHUTDOWN_SECONDS = 3


@contextlib.asynccontextmanager
async def local_service(settings: Settings) -> AsyncIterator[tuple[str, str]]:
    """Serve `settings`' database here; yields the service's URL and token."""
    token = secrets.token_urlsafe(32)
    chosen = settings.replace(host="127.0.0.1", port=0, api_token=token)
    app = create_app(chosen)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app,
        lifespan="on",
        log_config=None,  # the app's warnings reach stderr through logging's defaults
        access_log=False,
        timeout_graceful_shutdown=SHUTDOWN_SECONDS,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                break
            await asyncio.sleep(0.01)
        if task.done() or not server.started:
            if not task.cancelled() and task.exception() is not None:
                raise ClientError(f"the local service did not start: {task.exception()}")
            raise ClientError(f"the local service on {settings.db} did not start")
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", token
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await task
        sock.close()
        AppStatus.should_exit = False


class _Server(uvicorn.Server):
    """uvicorn that leaves SIGINT to the client, which cancels its job before it stops."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield
