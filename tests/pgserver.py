"""The throwaway PostgreSQL server (coursegen_dev.pgserver) as pytest fixtures.

Each pytest process (each pytest-xdist worker too) starts a server of its own.
conftest.py makes the fixtures available with:

    from tests.pgserver import pg_dsn, pg_server  # noqa: F401

`pg_server` (session, synchronous) is the running server; `pg_dsn` (function, async)
is the DSN of a new empty database on it, dropped (with FORCE) after the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from coursegen_dev.pgserver import PgServer, PgServerError

__all__ = ["PgServer", "PgServerError", "pg_dsn", "pg_server"]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One throwaway PostgreSQL server for the session (per xdist worker)."""
    server = PgServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def pg_dsn(pg_server: PgServer) -> AsyncIterator[str]:
    """The DSN of a new empty database, dropped after the test."""
    dsn = await pg_server.create_database()
    try:
        yield dsn
    finally:
        await pg_server.drop_database(dsn)
