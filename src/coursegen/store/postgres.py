"""The PostgreSQL engine: any number of nodes on one database.

- Event ids grow in commit order across nodes: the events of a transaction are
  inserted under a transaction-wide advisory lock held until COMMIT, so no id can
  commit after a higher one (a sequence alone hands ids out in start order).
- Each commit NOTIFYs; every node LISTENs on one dedicated connection and then reads
  the log after the last event it published. The log is the truth, the notification
  only a wake-up, and a poll every second covers a dropped connection.
- Lessons are claimed with FOR UPDATE SKIP LOCKED under a lease the runner renews;
  a claim also takes a lesson whose lease ran out (its node died), and `attempt`
  fences every later write, so a late result of a lost claim is never stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from coursegen.domain import JobSnapshot, Progress
from coursegen.resources import postgres_schema_path
from coursegen.store.base import OnCommit, Row, progress_of, summary_of
from coursegen.store.queries import Condition
from coursegen.store.sql import SqlStore
from coursegen.store.transaction import Transaction

logger = logging.getLogger(__name__)

T = TypeVar("T")

CHANNEL = "coursegen_events"
# Chunks of lessons being written, {"l": lesson, "a": attempt, "o": offset, "t": text},
# and requests for them ({"l": lesson}) from nodes with readers of a lesson written elsewhere.
TEXT_CHANNEL = "coursegen_text"
WANT_CHANNEL = "coursegen_want"
# A node got a 429 ({"n": node, "r": retry-after seconds or null}): the nodes share one
# API key, so every node backs off.
LIMIT_CHANNEL = "coursegen_limits"
_NOTIFY_BYTES = 7900  # PostgreSQL refuses a payload of 8000 bytes or more
# Held from the events' INSERT to COMMIT by every transaction that logs events.
_EVENT_ORDER_LOCK = 0x636F7572  # "cour"
# Held by a claim while it counts the cluster's calls in flight (with a limit set).
_CLUSTER_CLAIM_LOCK = _EVENT_ORDER_LOCK + 2
# What a course search looks in: exactly the expression of the `courses_search` index in
# schema_postgres.sql, or the index is not used.
_SEARCH_VECTOR = "to_tsvector('simple', c.title || ' ' || c.topic || ' ' || c.description)"
_SAFETY_POLL = 1.0  # seconds: how stale a node's streams may get if NOTIFY is lost
_RETRIES = 5  # a transaction chosen as a deadlock's victim runs again
_PLACEHOLDER = re.compile(r"\?")
_translated: dict[str, str] = {}


def _dialect(sql: str) -> str:
    """The statement with PostgreSQL's numbered placeholders for SQLite's `?`."""
    found = _translated.get(sql)
    if found is None:
        count = iter(range(1, 1000))
        found = _translated[sql] = _PLACEHOLDER.sub(lambda _: f"${next(count)}", sql)
    return found


def _json_bytes(text: str) -> int:
    return len(json.dumps(text, ensure_ascii=False).encode())


def _pieces(offset: int, text: str) -> list[tuple[int, str]]:
    """`text` (starting at `offset`) cut so that each piece fits in one NOTIFY payload."""
    pieces: list[tuple[int, str]] = []
    start = 0
    while start < len(text) or not pieces:
        size = len(text) - start
        while size > 1 and _json_bytes(text[start : start + size]) > _NOTIFY_BYTES - 100:
            size //= 2
        pieces.append((offset + start, text[start : start + size]))
        start += max(size, 1)
    return pieces


class PgTransaction(Transaction):
    """A transaction on an asyncpg connection."""

    def __init__(self, conn: asyncpg.Connection | PoolConnectionProxy) -> None:
        super().__init__()
        self.conn = conn

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        row: Row | None = await self.conn.fetchrow(_dialect(sql), *params)
        return row

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        return list(await self.conn.fetch(_dialect(sql), *params))

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> None:
        await self.conn.execute(_dialect(sql), *params)

    async def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        await self.conn.executemany(_dialect(sql), [tuple(row) for row in rows])

    async def write_events(self) -> None:
        if self._emitted:
            await self.conn.execute("SELECT pg_advisory_xact_lock($1)", _EVENT_ORDER_LOCK)
            await super().write_events()
            await self.conn.execute("SELECT pg_notify($1, '')", CHANNEL)

    async def lock_job(self, job_id: str) -> None:
        await self.conn.execute(
            "SELECT 1 FROM content_generation_jobs WHERE id = $1 FOR UPDATE", job_id
        )

    async def refresh_job(self, job_id: str, *, reopen: bool = False) -> Progress:
        # Its counters are counted from the lessons: a concurrent transaction of another
        # lesson must count after this one commits, not beside it.
        await self.lock_job(job_id)
        return await super().refresh_job(job_id, reopen=reopen)


class PostgresStore(SqlStore):
    """The store on a PostgreSQL database shared by every node."""

    shared = True  # other processes write it too
    # Pending, or held by a node whose lease ran out (it died, or lost the database).
    _CLAIMABLE = (
        "(l.content_status = 'pending' OR (l.content_status = 'generating' "
        "AND l.lease_until < clock_timestamp()))"
    )
    _QUIZ_CLAIMABLE = (
        "(l.quiz_status = 'pending' OR (l.quiz_status = 'generating' "
        "AND l.lease_until < clock_timestamp()))"
    )

    def __init__(
        self,
        pool: asyncpg.Pool,
        dsn: str,
        on_commit: OnCommit,
        node: str,
        lease: float,
        cluster_limit: int | None,
    ) -> None:
        self._pool = pool
        self._cluster_limit = cluster_limit
        self._dsn = dsn
        self._on_commit = on_commit
        self.node = node
        self._lease = lease
        self._published = 0  # the newest event told to `on_commit`
        self._pump_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._feed: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection | None = None
        self._on_text: Callable[[int, int, int, str], None] | None = None
        self._on_wanted: Callable[[int], None] | None = None
        self._on_limited: Callable[[float | None], None] | None = None
        # Chunks leave in order through one connection: NOTIFYs of one session arrive in
        # the order sent, those of several sessions need not.
        self._outbox: asyncio.Queue[str] = asyncio.Queue()
        self._sender: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        dsn: str,
        on_commit: OnCommit,
        *,
        node: str,
        lease: float,
        cluster_limit: int | None = None,
    ) -> PostgresStore:
        """Connect, bring the schema up to date and start following the event log."""
        pool = await asyncpg.create_pool(dsn, min_size=2, max_size=10)
        try:
            # One node at a time applies the schema.
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _EVENT_ORDER_LOCK + 1)
                await conn.execute(postgres_schema_path().read_text())
            store = cls(pool, dsn, on_commit, node, lease, cluster_limit)
            store._published = await store.newest_event_id()
            await store._listen()
        except BaseException:
            await pool.close()
            raise
        store._feed = asyncio.create_task(store._follow(), name="event feed")
        return store

    async def close(self) -> None:
        for task in (self._feed, self._sender):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
        await self._pool.close()

    # -- transactions ----------------------------------------------------------------

    async def _write(self, work: Callable[[Transaction], Awaitable[T]]) -> T:
        for attempt in range(_RETRIES):
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    txn = PgTransaction(conn)
                    result = await work(txn)
                    await txn.write_events()
                break
            except asyncpg.exceptions.DeadlockDetectedError:
                if attempt == _RETRIES - 1:
                    raise
                logger.info("a transaction met a deadlock and runs again")
        if txn.events:
            # Every event up to this transaction's is told before it returns, in order.
            await self._pump(until=txn.events[-1].id)
        return result

    async def _read(self, work: Callable[[Transaction], Awaitable[T]]) -> T:
        async with (
            self._pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            return await work(PgTransaction(conn))

    async def _read_one(self, work: Callable[[Transaction], Awaitable[T]]) -> T:
        async with self._pool.acquire() as conn:
            return await work(PgTransaction(conn))

    # -- following the log -------------------------------------------------------------

    async def _listen(self) -> None:
        self._listener = await asyncpg.connect(self._dsn)
        await self._listener.add_listener(CHANNEL, self._notified)
        await self._listener.add_listener(TEXT_CHANNEL, self._text_arrived)
        await self._listener.add_listener(WANT_CHANNEL, self._text_wanted)
        await self._listener.add_listener(LIMIT_CHANNEL, self._limited)
        self._listener.add_termination_listener(self._lost)

    def _notified(self, *args: object) -> None:
        self._wake.set()

    def _lost(self, *args: object) -> None:
        self._listener = None
        self._wake.set()

    async def _follow(self) -> None:
        """Publish other nodes' events as they commit (this node's are published by
        `_write` itself); reconnect the listener when it drops."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_SAFETY_POLL):
                    await self._wake.wait()
            self._wake.clear()
            try:
                if self._listener is None:
                    await self._listen()
                await self._pump()
            except (OSError, asyncpg.PostgresError) as exc:
                logger.warning("following the event log failed (%s); trying again", exc)

    async def _pump(self, until: int | None = None) -> None:
        """Tell `on_commit` of every committed event after the last told, in id order."""
        async with self._pump_lock:
            while until is None or self._published < until:
                events = await self.events_after(self._published)
                if not events:
                    return
                self._published = events[-1].id
                self._on_commit(events)

    # -- the text of lessons being written, between nodes ----------------------------------

    def follow_text(
        self, on_text: Callable[[int, int, int, str], None], on_wanted: Callable[[int], None]
    ) -> None:
        self._on_text, self._on_wanted = on_text, on_wanted

    async def want_text(self, lesson_id: int) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(
                "SELECT pg_notify($1, $2)", WANT_CHANNEL, json.dumps({"l": lesson_id})
            )

    def share_text(self, lesson_id: int, attempt: int, offset: int, text: str) -> None:
        for piece_offset, piece in _pieces(offset, text):
            payload = {"l": lesson_id, "a": attempt, "o": piece_offset, "t": piece}
            self._outbox.put_nowait(json.dumps(payload, separators=(",", ":"), ensure_ascii=False))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_text(), name="text sender")

    async def _send_text(self) -> None:
        conn = await asyncpg.connect(self._dsn)
        try:
            while True:
                payload = await self._outbox.get()
                try:
                    await conn.execute("SELECT pg_notify($1, $2)", TEXT_CHANNEL, payload)
                except (OSError, asyncpg.PostgresError) as exc:
                    # Readers elsewhere then catch up from the text stored once a second.
                    logger.warning("sending a lesson's text to other nodes failed: %s", exc)
                    return
        finally:
            await conn.close()

    def _text_arrived(self, *args: Any) -> None:
        if self._on_text is not None:
            chunk = json.loads(args[3])
            self._on_text(chunk["l"], chunk["a"], chunk["o"], chunk["t"])

    def _text_wanted(self, *args: Any) -> None:
        if self._on_wanted is not None:
            self._on_wanted(json.loads(args[3])["l"])

    # -- rate limits, between nodes --------------------------------------------------------

    def follow_rate_limits(self, on_limited: Callable[[float | None], None]) -> None:
        self._on_limited = on_limited

    async def share_rate_limit(self, retry_after: float | None) -> None:
        payload = json.dumps({"n": self.node, "r": retry_after})
        async with self._pool.acquire() as conn:
            await conn.execute("SELECT pg_notify($1, $2)", LIMIT_CHANNEL, payload)

    def _limited(self, *args: Any) -> None:
        message = json.loads(args[3])
        if self._on_limited is not None and message["n"] != self.node:
            self._on_limited(message["r"])

    # -- what PostgreSQL says its own way --------------------------------------------------

    def _own_lessons(self) -> tuple[str, tuple[Any, ...]]:
        return " AND node = ?", (self.node,)

    def _matching(self, words: list[str]) -> Condition:
        """Full-text search with the `simple` configuration (no stemming, any language),
        on the expression `courses_search` indexes. Each word is a quoted lexeme (quotes
        and backslashes doubled), so nothing a person types is tsquery syntax; the
        lexeme goes through the same parser as the course's text."""
        lexemes = ["'" + word.replace("\\", "\\\\").replace("'", "''") + "'" for word in words]
        lexemes[-1] += ":*"
        return f"{_SEARCH_VECTOR} @@ to_tsquery('simple', ?)", (" & ".join(lexemes),)

    _CLAIM_LOCK = " FOR UPDATE OF l SKIP LOCKED"  # nodes claiming at once take others
    # A lesson in a batch has no lease: no node's death makes it claimable again.
    _UNLEASE = ", node = NULL, lease_until = NULL"

    def _claim(self) -> tuple[str, tuple[Any, ...]]:
        """A claim holds for the lease, by the database's clock, and names its node."""
        return ", node = ?, lease_until = clock_timestamp() + make_interval(secs => ?)", (
            self.node,
            self._lease,
        )

    async def _may_claim(self, txn: Transaction) -> bool:
        return self._cluster_limit is None or not await self._cluster_full(txn)

    async def _cluster_full(self, txn: Transaction) -> bool:
        """Whether the calls in flight on every node (unexpired claims) reach the limit.

        Counted and claimed under one lock, so two nodes cannot both take the last slot;
        a dead node's claims count until their leases run out.
        """
        await txn.execute("SELECT pg_advisory_xact_lock(?)", (_CLUSTER_CLAIM_LOCK,))
        row = await txn.fetchone(
            "SELECT count(*) AS n FROM lessons WHERE (content_status = 'generating' "
            "OR quiz_status = 'generating') AND lease_until >= clock_timestamp()"
        )
        assert row is not None and self._cluster_limit is not None
        return int(row["n"]) >= self._cluster_limit

    async def renew_leases(self, held: list[tuple[int, int, bool]]) -> set[tuple[int, bool]]:
        """Extend this node's claims (a lesson's text, or its quiz); those it no longer
        holds (taken over, cancelled, superseded)."""
        if not held:
            return set()
        async with self._pool.acquire() as conn:
            kept = await conn.fetch(
                "UPDATE lessons SET lease_until = clock_timestamp() + make_interval(secs => $1) "
                "FROM unnest($2::bigint[], $3::int[], $4::bool[]) AS held(id, attempt, quiz) "
                "WHERE lessons.id = held.id AND lessons.node = $5 AND CASE WHEN held.quiz "
                "THEN lessons.quiz_attempt = held.attempt AND lessons.quiz_status = 'generating' "
                "ELSE lessons.attempt = held.attempt AND lessons.content_status = 'generating' "
                "END RETURNING lessons.id, held.quiz",
                self._lease,
                [lesson_id for lesson_id, _, _ in held],
                [attempt for _, attempt, _ in held],
                [quiz for _, _, quiz in held],
                self.node,
            )
        return {(lesson_id, quiz) for lesson_id, _, quiz in held} - {
            (row["id"], row["quiz"]) for row in kept
        }

    async def job_snapshot(self, job_id: str) -> JobSnapshot | None:
        async def work(txn: Transaction) -> JobSnapshot | None:
            job = await txn.fetchone(
                "SELECT id, course_id, status, total_lessons, completed_lessons, "
                "failed_lessons, error_message, started_at, completed_at, "
                "(SELECT coalesce(max(e.id), 0) FROM events e WHERE e.job_id = j.id) AS newest "
                "FROM content_generation_jobs j WHERE j.id = ?",
                (job_id,),
            )
            if job is None:
                return None
            lessons = await txn.fetchall(
                "SELECT id, position, title, description, content_status, content_error, "
                "quiz_status "
                "FROM lessons WHERE course_id = ? ORDER BY position, id",
                (job["course_id"],),
            )
            spent = await txn.usage(course_id=job["course_id"])
            return JobSnapshot(
                progress_of(job, spent), tuple(summary_of(row) for row in lessons), job["newest"]
            )

        return await self._read(work)
