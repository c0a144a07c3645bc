"""Test helpers written once: free ports, servers in a thread, waiting for a condition,
starting a course over HTTP.

Only the standard library, httpx and uvicorn: scripts (chaos.py) and the benchmark's
dev package may use it too, and it imports nothing of pytest.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import uvicorn
from starlette.types import ASGIApp


def bind_free_socket(host: str = "127.0.0.1") -> socket.socket:
    """A TCP socket bound to a free port on `host`, for a server to listen on."""
    # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on sockets whose
    # protocol says TCP, and without it every answer waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


def free_port() -> int:
    """A port nobody listens on right now (a child process binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def served_in_thread(app: ASGIApp) -> Iterator[str]:
    """`app` served by uvicorn in a thread of its own, for synchronous tests; its URL."""
    sock = bind_free_socket()
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=1)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the server did not start")
            threading.Event().wait(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


async def until(
    condition: Callable[[], bool | Awaitable[bool]], within: float = 10.0, every: float = 0.02
) -> None:
    """Poll `condition` (plain or async) until it holds; TimeoutError after `within` s."""
    async with asyncio.timeout(within):
        while True:
            held = condition()
            if inspect.isawaitable(held):
                held = await held
            if held:
                return
            await asyncio.sleep(every)


async def generate(
    http: httpx.AsyncClient, topic: str = "Sourdough baking", lessons: int = 3, **body: Any
) -> dict[str, Any]:
    """Start a course over the API (201 or the test fails); the answer."""
    response = await http.post(
        "/api/courses/generate", json={"topic": topic, "lessons": lessons, **body}
    )
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer
