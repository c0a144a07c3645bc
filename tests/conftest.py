"""Shared fixtures: a fake Messages API on loopback, apps on temporary databases, live servers."""

from __future__ import annotations

import asyncio
import re
import socket
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
import uvicorn
from asgi_lifespan import LifespanManager
from sse_starlette.sse import AppStatus
from starlette.applications import Starlette
from starlette.types import ASGIApp

from coursegen.app import create_app
from coursegen.events import TERMINAL_JOB_STATUSES
from coursegen.providers import Provider
from coursegen.providers.anthropic_api import AnthropicProvider
from coursegen.services import Services
from coursegen.settings import Settings
from coursegen_dev.fake_anthropic import FakeAnthropic
from tests.helpers import bind_free_socket, generate
from tests.pgserver import pg_dsn, pg_server  # noqa: F401
from tests.serverproc import counter_mismatches

API_KEY = "sk-ant-api03-test-key-do-not-leak-7f3a9c"


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic(api_key=API_KEY) as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest) -> str:
    """The database engine a test runs on: every store, API and stream test runs on both.

    A module whose subject does not depend on the engine overrides this fixture.
    """
    engine: str = request.param
    return engine


@pytest.fixture
def settings(tmp_path: Path, engine: str, request: pytest.FixtureRequest) -> Settings:
    db = request.getfixturevalue("pg_dsn") if engine == "postgresql" else tmp_path / "coursegen.db"
    return Settings(
        db=str(db),
        provider="anthropic",
        model="claude-test",
        concurrency=4,
        max_retries=0,
        lesson_timeout=10.0,
        demo_delay=0.0,
        ping_interval=15.0,
    )


@dataclass
class Running:
    """An app with its lifespan running, and an HTTP client for it."""

    app: Starlette
    http: httpx.AsyncClient
    provider: AnthropicProvider
    asgi: ASGIApp  # the app with its lifespan state, for a client of one's own

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services

    async def generate(
        self, topic: str = "Sourdough baking", lessons: int = 3, **body: Any
    ) -> dict[str, Any]:
        return await generate(self.http, lessons, topic, **body)

    async def settle(self, job_id: str, seconds: float = 10.0) -> dict[str, Any]:
        """Wait, woken by each committed event, until the job is in a terminal status."""
        return await self.until(
            lambda p: p["status"] in TERMINAL_JOB_STATUSES, job_id, seconds=seconds
        )

    async def until(
        self, condition: Callable[[dict[str, Any]], bool], job_id: str, seconds: float = 10.0
    ) -> dict[str, Any]:
        """Wait, woken by each committed event, until `condition(progress)` holds."""
        return await job_reaches(self.services, job_id, condition, seconds)

    async def wait_for_lessons(
        self, condition: Callable[[list[dict[str, Any]]], bool], course_id: int, seconds: float = 10
    ) -> list[dict[str, Any]]:
        """Wait, woken by each committed event, until `condition(lessons)` holds."""
        store = self.services.store

        async def lessons() -> list[dict[str, Any]] | None:
            course = await store.get_course(course_id)
            assert course is not None
            found: list[dict[str, Any]] = course.to_json()["lessons"]
            return found if condition(found) else None

        return await woken_until(self.services, lessons, seconds)


T = TypeVar("T")


async def woken_until(
    services: Services, check: Callable[[], Awaitable[T | None]], seconds: float = 10.0
) -> T:
    """Re-run `check` after every committed event until it returns something."""
    # Subscribed before the first check, so an event during a check is never missed.
    subscription = services.broker.subscribe(None, ping_interval=None)
    try:
        async with asyncio.timeout(seconds):
            while True:
                found = await check()
                if found is not None:
                    return found
                await subscription.wait()
    finally:
        subscription.close()


async def job_reaches(
    services: Services,
    job_id: str,
    condition: Callable[[dict[str, Any]], bool] = lambda p: p["status"] in TERMINAL_JOB_STATUSES,
    seconds: float = 10.0,
) -> dict[str, Any]:
    """Wait until the job's progress object satisfies `condition` (default: terminal)."""

    async def progress() -> dict[str, Any] | None:
        found = await services.store.get_progress(job_id)
        assert found is not None
        progress = found.to_json()
        return progress if condition(progress) else None

    return await woken_until(services, progress, seconds)


def provider_for(settings: Settings, fake: FakeAnthropic) -> AnthropicProvider:
    return AnthropicProvider(settings, api_key=API_KEY, base_url=fake.base_url)


@pytest.fixture
async def start_app(
    fake: FakeAnthropic, settings: Settings
) -> AsyncIterator[Callable[..., Awaitable[Running]]]:
    """Start an app in-process (ASGI transport): for request/response tests."""
    stack: list[tuple[LifespanManager, httpx.AsyncClient, AnthropicProvider]] = []

    async def start(**changes: Any) -> Running:
        chosen = settings.replace(**changes)
        provider = provider_for(chosen, fake)
        app = create_app(chosen, provider=provider)
        manager = LifespanManager(app, startup_timeout=10, shutdown_timeout=10)
        await manager.__aenter__()
        transport = httpx.ASGITransport(app=manager.app)
        http = httpx.AsyncClient(transport=transport, base_url="http://localhost")
        stack.append((manager, http, provider))
        return Running(app, http, provider, manager.app)

    yield start
    for manager, http, provider in reversed(stack):
        await http.aclose()
        await manager.__aexit__(None, None, None)
        await provider.aclose()


@pytest.fixture
async def running(start_app: Callable[..., Awaitable[Running]]) -> Running:
    return await start_app()


@dataclass
class Live:
    """The app served by a real uvicorn on a loopback port: for streams."""

    url: str
    app: Starlette
    server: uvicorn.Server

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services


@pytest.fixture
async def start_live(
    fake: FakeAnthropic, settings: Settings
) -> AsyncIterator[Callable[..., Awaitable[Live]]]:
    """Serve an app with a real uvicorn on 127.0.0.1 (a free port): for streams and browsers.

    It talks to the fake Messages API unless a `provider` (e.g. DemoProvider) is given;
    other keyword arguments change the settings.
    """
    servers: list[tuple[uvicorn.Server, asyncio.Task[None], socket.socket, Provider]] = []

    async def start(provider: Provider | None = None, **changes: Any) -> Live:
        chosen = settings.replace(**changes)
        provider = provider or provider_for(chosen, fake)
        app = create_app(chosen, provider=provider)
        sock = bind_free_socket()
        server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=3)
        )
        task = asyncio.create_task(server.serve(sockets=[sock]))
        servers.append((server, task, sock, provider))
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        return Live(f"http://127.0.0.1:{sock.getsockname()[1]}", app, server)

    yield start
    for server, task, sock, provider in reversed(servers):
        server.should_exit = True
        await task
        sock.close()
        await provider.aclose()
    AppStatus.should_exit = False


async def db_rows(settings: Settings, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of a statement (`?` placeholders) read straight from the test's database,
    whichever its engine: what the service stored, not what it says it stored."""
    if settings.engine == "postgresql":
        count = iter(range(1, 100))
        conn = await asyncpg.connect(settings.db)
        try:
            records = await conn.fetch(re.sub(r"\?", lambda _: f"${next(count)}", sql), *params)
        finally:
            await conn.close()
        return [tuple(record) for record in records]
    with sqlite3.connect(settings.db_path) as db:
        return db.execute(sql, params).fetchall()


async def counters_hold(settings: Settings) -> list[str]:
    """Every job whose counters disagree with its lessons (empty when all hold)."""
    database = settings.db if settings.engine == "postgresql" else settings.db_path
    return await counter_mismatches(database)
