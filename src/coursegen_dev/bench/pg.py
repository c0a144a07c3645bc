"""The bench's PostgreSQL: the tests' throwaway server (coursegen_dev.pgserver), started
on the CPUs given (the clients' and the fake's: like the fake, it is what the service
talks to, not the service) and with `track_commit_timestamp` on, so that the bench can
read when each event committed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from coursegen_dev.bench.procs import spawned_on
from coursegen_dev.pgserver import PgServer

if TYPE_CHECKING:
    import asyncpg

# As the tests' server, plus the commit time of every transaction (pg_xact_commit_timestamp):
# the moment a commit is made, which the cross-node delivery figure measures from.
SETTINGS = (
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
    " -c max_wal_size=256MB -c track_commit_timestamp=on"
)


def start_server(cpus: set[int] | None) -> PgServer:
    """The bench's server, started on `cpus` (the clients' and the fake's)."""
    return PgServer.start(SETTINGS, spawn=lambda: spawned_on(cpus))


async def connect(dsn: str) -> asyncpg.Connection:
    """An asyncpg connection (imported here: the SQLite bench does not need asyncpg)."""
    import asyncpg

    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    return conn


async def write_transactions(conn: asyncpg.Connection) -> int:
    """The server's next transaction id: it grows by one for each transaction that writes
    (a reading one is given none), whatever the database and connection."""
    value: int = await conn.fetchval("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint")
    return value
