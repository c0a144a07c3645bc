"""The throwaway PostgreSQL server of tests/pgserver.py: a database per test, LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.pgserver import PgServer, PgServerError

# The fixtures, until tests/conftest.py imports them for every module. (Assigned, not
# imported by name: ruff reports an imported fixture used as a parameter as F811.)


async def user_tables(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
    )
    return [r["tablename"] for r in rows]


async def test_server_is_a_unix_socket_only_throwaway(pg_server: PgServer) -> None:
    assert pg_server.port != 5432
    assert (pg_server.base / f".s.PGSQL.{pg_server.port}").is_socket()
    conn = await asyncpg.connect(pg_server.dsn)
    try:
        assert await conn.fetchval("SHOW listen_addresses") == ""
        assert await conn.fetchval("SHOW fsync") == "off"
        assert await conn.fetchval("SHOW server_encoding") == "UTF8"
        assert int(await conn.fetchval("SHOW max_connections")) == 200
    finally:
        await conn.close()


async def check_empty_then_leave_a_table(dsn: str, table: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        assert (await conn.fetchval("SELECT current_database()")).startswith("test_")
        assert await user_tables(conn) == []
        # Leave a table behind: the other test must not see it, whichever runs first.
        await conn.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY)")
        assert await user_tables(conn) == [table]
    finally:
        await conn.close()


async def test_a_test_gets_an_empty_database(pg_dsn: str) -> None:
    await check_empty_then_leave_a_table(pg_dsn, "left_by_first")


async def test_another_test_gets_another_empty_database(pg_dsn: str) -> None:
    await check_empty_then_leave_a_table(pg_dsn, "left_by_second")


async def test_table_round_trip(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute("CREATE TABLE events (id bigserial PRIMARY KEY, body text NOT NULL)")
        await conn.executemany("INSERT INTO events (body) VALUES ($1)", [("a",), ("é",)])
        rows = await conn.fetch("SELECT id, body FROM events ORDER BY id")
        assert [(r["id"], r["body"]) for r in rows] == [(1, "a"), (2, "é")]
    finally:
        await conn.close()


async def test_listen_notify_between_connections(pg_dsn: str) -> None:
    listener = await asyncpg.connect(pg_dsn)
    sender = await asyncpg.connect(pg_dsn)
    try:
        got: asyncio.Queue[tuple[int, str, str]] = asyncio.Queue()
        await listener.add_listener(
            "events", lambda _conn, pid, channel, payload: got.put_nowait((pid, channel, payload))
        )
        async with sender.transaction():
            await sender.execute("SELECT pg_notify('events', '42')")
            # Delivered at COMMIT, not before.
            await asyncio.sleep(0.05)
            assert got.empty()
        pid, channel, payload = await asyncio.wait_for(got.get(), timeout=5)
        assert (channel, payload) == ("events", "42")
        assert pid == sender.get_server_pid()
    finally:
        await listener.close()
        await sender.close()


async def test_databases_are_dropped_after_use(pg_server: PgServer) -> None:
    dsn = await pg_server.create_database()
    left_open = await asyncpg.connect(dsn)  # DROP ... WITH (FORCE) cuts it
    await pg_server.drop_database(dsn)
    assert left_open.is_closed() or not await _alive(left_open)
    left_open.terminate()
    conn = await asyncpg.connect(pg_server.dsn)
    try:
        names = await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE 'test_%'")
    finally:
        await conn.close()
    assert dsn.split("/")[-1].split("?")[0] not in {r["datname"] for r in names}


async def _alive(conn: asyncpg.Connection) -> bool:
    try:
        await conn.fetchval("SELECT 1")
    except (asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError):
        return False
    return True


def test_start_failure_raises_with_the_log() -> None:
    with pytest.raises(PgServerError, match="no_such_setting") as info:
        PgServer.start("-c no_such_setting=1")
    assert "server.log" in str(info.value)
