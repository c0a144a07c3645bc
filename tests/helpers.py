"""Test helpers written once: free ports, a server in a thread, waiting until a
condition holds, starting a course over HTTP. (The fixtures are in conftest.py; the
child-process server in serverproc.py; the PostgreSQL server in coursegen_dev.)

It imports nothing of pytest, so scripts may use it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import uvicorn
from starlette.types import ASGIApp

from coursegen_dev.net import bind_free_socket, free_port

__all__ = ["bind_free_socket", "free_port", "generate", "served_in_thread", "until"]


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
    condition: Callable[[], bool | Awaitable[bool]], within: float = 20.0, every: float = 0.01
) -> None:
    """Poll `condition` (plain or async: the fake's state, the database) until it holds.

    For what no event announces; what the service commits, `woken_until` in conftest.py
    waits for without polling. Past `within` seconds the test fails naming the condition.
    """
    try:
        async with asyncio.timeout(within):
            while True:
                held = condition()
                if inspect.isawaitable(held):
                    held = await held
                if held:
                    return
                await asyncio.sleep(every)
    except TimeoutError:
        what = condition.__doc__ or getattr(condition, "__name__", repr(condition))
        raise AssertionError(f"{what} (not within {within:g} s)") from None


async def generate(
    http: httpx.AsyncClient, lessons: int = 3, topic: str = "Sourdough baking", **body: Any
) -> dict[str, Any]:
    """Start a course over the API (201 or the test fails); the answer."""
    response = await http.post(
        "/api/courses/generate", json={"topic": topic, "lessons": lessons, **body}
    )
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer
