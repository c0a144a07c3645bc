"""The SQLite engine: the SQLite connections, their transactions and pragmas.

Writes go through one connection, one transaction at a time (an asyncio lock:
an aiosqlite transaction belongs to the connection, not to the task). Each
write commits its state change together with the event rows describing it,
then hands those events to the broker, still inside the lock, so the broker
sees them in commit order. Reads use a second connection, which in WAL mode
sees only committed data. Every transaction runs shielded from cancellation:
a cancelled caller must never leave a half-done transaction on a shared
connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from coursegen.store.base import OnCommit
from coursegen.store.schema import connect, migrate
from coursegen.store.sql import SqlStore
from coursegen.store.transaction import SqliteTransaction, Transaction

logger = logging.getLogger(__name__)

T = TypeVar("T")


class SqliteStore(SqlStore):
    """The store on one SQLite file: one writer connection, one reader."""

    def __init__(
        self, writer: aiosqlite.Connection, reader: aiosqlite.Connection, on_commit: OnCommit
    ) -> None:
        self._writer = writer
        self._reader = reader
        self._on_commit = on_commit
        self._write_lock = asyncio.Lock()
        self._read_lock = asyncio.Lock()
        self._running: set[asyncio.Task[Any]] = set()

    @classmethod
    async def open(cls, path: Path, on_commit: OnCommit) -> SqliteStore:
        """Open (creating if needed) the database at `path` and bring its schema up to date."""
        writer = await connect(path, read_only=False)
        try:
            await migrate(writer)
            reader = await connect(path, read_only=True)
        except BaseException:
            await writer.close()
            raise
        return cls(writer, reader, on_commit)

    async def close(self) -> None:
        """Wait for the transactions under way, then close both connections."""
        if self._running:
            await asyncio.wait(set(self._running))
        await self._writer.close()
        await self._reader.close()

    # -- transactions ---------------------------------------------------------------

    async def _shielded(self, work: Awaitable[T]) -> T:
        task = asyncio.ensure_future(work)
        self._running.add(task)
        task.add_done_callback(self._finished)
        return await asyncio.shield(task)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._running.discard(task)
        # A caller cancelled while its transaction finished never sees the result.
        if not task.cancelled() and task.exception() is not None:
            logger.debug("transaction failed: %r", task.exception())

    async def _write(self, work: Callable[[Transaction], Awaitable[T]]) -> T:
        async def run() -> T:
            async with self._write_lock:
                txn = SqliteTransaction(self._writer)
                await self._writer.execute("BEGIN IMMEDIATE")
                try:
                    result = await work(txn)
                    await txn.write_events()
                    await self._writer.execute("COMMIT")
                except BaseException:
                    await self._writer.execute("ROLLBACK")
                    raise
                # Still under the lock: the callback sees transactions in commit order.
                self._on_commit(txn.events)
                return result

        return await self._shielded(run())

    async def _read(self, work: Callable[[Transaction], Awaitable[T]]) -> T:
        """Run several reads on one consistent snapshot."""

        async def run() -> T:
            async with self._read_lock:
                await self._reader.execute("BEGIN")
                try:
                    return await work(SqliteTransaction(self._reader))
                finally:
                    await self._reader.execute("COMMIT")

        return await self._shielded(run())

    async def _read_one(self, work: Callable[[Transaction], Awaitable[T]]) -> T:
        """Run one statement: its own snapshot, so no BEGIN and COMMIT round trips."""

        async def run() -> T:
            # The lock still matters: inside another task's BEGIN the statement would
            # read that transaction's older snapshot.
            async with self._read_lock:
                return await work(SqliteTransaction(self._reader))

        return await self._shielded(run())

    # One process owns an unshared database: no other node writes or reads its lessons.

    def follow_text(
        self, on_text: Callable[[int, int, int, str], None], on_wanted: Callable[[int], None]
    ) -> None:
        """Call `on_text` with other nodes' chunks, `on_wanted` when one wants ours."""
        return None

    async def want_text(self, lesson_id: int) -> None:
        """Ask the node writing this lesson for its text as it comes."""
        return None

    def share_text(self, lesson_id: int, attempt: int, offset: int, text: str) -> None:
        """Send a chunk of a lesson written here to the nodes that want it."""
        return None

    def follow_rate_limits(self, on_limited: Callable[[float | None], None]) -> None:
        """Call `on_limited(retry_after)` when another node is rate limited."""
        return None

    async def share_rate_limit(self, retry_after: float | None) -> None:
        """Tell the other nodes (one API key) that the provider rate limits it."""
        return None
