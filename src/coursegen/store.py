"""The database: the one owner of the SQLite connections and of every SQL statement.

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
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from coursegen.errors import Conflict, NotFound
from coursegen.events import Broker, Event, encode_data
from coursegen.providers.base import LessonPlan, Outline
from coursegen.resources import schema_path

logger = logging.getLogger(__name__)

T = TypeVar("T")

IDEMPOTENCY_TTL = 24 * 3600
EVENT_PAGE = 500

# Columns added after the first release: (table, column, declaration).
_COLUMNS_ADDED_LATER = (("lessons", "attempt", "INTEGER NOT NULL DEFAULT 0"),)

_LATEST_JOB = (
    "(SELECT j.id FROM content_generation_jobs j WHERE j.course_id = {course} "
    "ORDER BY j.started_at DESC, j.rowid DESC LIMIT 1)"
)
_JOB_COLUMNS = (
    "id, course_id, status, total_lessons, completed_lessons, failed_lessons, "
    "error_message, started_at, completed_at"
)


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class ClaimedLesson:
    """A lesson a runner has just moved to `generating`."""

    id: int
    position: int
    attempt: int


@dataclass(frozen=True, slots=True)
class CourseOutline:
    """What a lesson prompt needs: the topic and the whole outline, in course order."""

    topic: str
    outline: Outline
    lesson_ids: tuple[int, ...]


def progress_view(row: aiosqlite.Row | dict[str, Any]) -> dict[str, Any]:
    total = row["total_lessons"]
    settled = row["completed_lessons"] + row["failed_lessons"]
    return {
        "job_id": row["id"],
        "course_id": row["course_id"],
        "status": row["status"],
        "progress": settled * 100 // total if total else 0,
        "total_lessons": total,
        "completed_lessons": row["completed_lessons"],
        "failed_lessons": row["failed_lessons"],
        "error_message": row["error_message"],
        "started_at": row["started_at"],
        "completed_at": row["completed_at"],
    }


def _lesson_event(job_id: str, course_id: int, row: aiosqlite.Row) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "course_id": course_id,
        "lesson_id": row["id"],
        "position": row["position"],
        "content_status": row["content_status"],
        "content_error": row["content_error"],
    }


class _Transaction:
    """An open write transaction and the events it will publish once committed."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db
        self.events: list[Event] = []
        self.forgotten_courses: list[int] = []

    async def emit(
        self, type: str, data: dict[str, Any], *, job_id: str | None, course_id: int | None
    ) -> None:
        text = encode_data(data)
        cursor = await self.db.execute(
            "INSERT INTO events (job_id, course_id, type, data, created_at) VALUES (?, ?, ?, ?, ?)",
            (job_id, course_id, type, text, utcnow()),
        )
        assert cursor.lastrowid is not None
        self.events.append(Event.from_row(cursor.lastrowid, job_id, course_id, type, text))

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Row | None:
        async with self.db.execute(sql, tuple(params)) as cursor:
            return await cursor.fetchone()

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        return list(await self.db.execute_fetchall(sql, tuple(params)))

    async def lesson_changed(self, job_id: str, course_id: int, row: aiosqlite.Row) -> None:
        await self.emit(
            "lesson", _lesson_event(job_id, course_id, row), job_id=job_id, course_id=course_id
        )

    async def refresh_job(self, job_id: str, *, reopen: bool = False) -> dict[str, Any]:
        """Derive the job's counters and status from its lessons; emit what changed."""
        job = await self.fetchone(
            f"SELECT {_JOB_COLUMNS} FROM content_generation_jobs WHERE id = ?", (job_id,)
        )
        assert job is not None
        counts = await self.fetchone(
            "SELECT count(*) AS total, "
            "coalesce(sum(content_status = 'complete'), 0) AS completed, "
            "coalesce(sum(content_status = 'error'), 0) AS failed "
            "FROM lessons WHERE course_id = ?",
            (job["course_id"],),
        )
        assert counts is not None
        failed = counts["failed"]
        new = dict(job)
        new.update(
            total_lessons=counts["total"],
            completed_lessons=counts["completed"],
            failed_lessons=counts["failed"],
        )
        if reopen and job["status"] != "running":
            new.update(status="running", completed_at=None, error_message=None)
        elif job["status"] == "running" and new["completed_lessons"] + failed == counts["total"]:
            new.update(
                status="error" if failed else "complete",
                completed_at=utcnow(),
                error_message=f"{failed} of {counts['total']} lessons failed" if failed else None,
            )
        counters_changed = any(
            new[k] != job[k] for k in ("total_lessons", "completed_lessons", "failed_lessons")
        )
        status_changed = new["status"] != job["status"]
        if counters_changed or status_changed:
            await self.db.execute(
                "UPDATE content_generation_jobs SET status = ?, total_lessons = ?, "
                "completed_lessons = ?, failed_lessons = ?, completed_at = ?, error_message = ? "
                "WHERE id = ?",
                (
                    new["status"],
                    new["total_lessons"],
                    new["completed_lessons"],
                    new["failed_lessons"],
                    new["completed_at"],
                    new["error_message"],
                    job_id,
                ),
            )
        progress = progress_view(new)
        if counters_changed:
            await self.emit("progress", progress, job_id=job_id, course_id=job["course_id"])
        if status_changed:
            await self.emit("job", progress, job_id=job_id, course_id=job["course_id"])
        return progress


async def _connect(path: Path, *, read_only: bool) -> aiosqlite.Connection:
    # isolation_level=None: transactions are begun and ended explicitly, nothing implicit.
    db = await aiosqlite.connect(path, isolation_level=None)
    db.row_factory = aiosqlite.Row
    for pragma in (
        "journal_mode = WAL",
        "foreign_keys = ON",
        "busy_timeout = 5000",
        "synchronous = NORMAL",
    ):
        await db.execute(f"PRAGMA {pragma}")
    if read_only:
        await db.execute("PRAGMA query_only = ON")
    return db


class Store:
    """Async access to courses, lessons, jobs, the event log and idempotency keys."""

    def __init__(
        self, writer: aiosqlite.Connection, reader: aiosqlite.Connection, broker: Broker
    ) -> None:
        self._writer = writer
        self._reader = reader
        self._broker = broker
        self._write_lock = asyncio.Lock()
        self._read_lock = asyncio.Lock()
        self._running: set[asyncio.Task[Any]] = set()

    @classmethod
    async def open(cls, path: Path, broker: Broker) -> Store:
        """Open (creating if needed) the database at `path` and bring its schema up to date."""
        writer = await _connect(path, read_only=False)
        try:
            await writer.executescript(schema_path().read_text())
            for table, column, declaration in _COLUMNS_ADDED_LATER:
                columns = {row["name"] for row in await writer.execute_fetchall(
                    f"PRAGMA table_info({table})"
                )}  # fmt: skip
                if column not in columns:
                    logger.info("adding column %s.%s to an older database", table, column)
                    await writer.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            reader = await _connect(path, read_only=True)
        except BaseException:
            await writer.close()
            raise
        store = cls(writer, reader, broker)
        broker.reset(await store.newest_event_id())
        return store

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

    async def _write(self, work: Callable[[_Transaction], Awaitable[T]]) -> T:
        async def run() -> T:
            async with self._write_lock:
                txn = _Transaction(self._writer)
                await self._writer.execute("BEGIN IMMEDIATE")
                try:
                    result = await work(txn)
                    await self._writer.execute("COMMIT")
                except BaseException:
                    await self._writer.execute("ROLLBACK")
                    raise
                for course_id in txn.forgotten_courses:
                    self._broker.forget_course(course_id)
                self._broker.publish(txn.events)
                return result

        return await self._shielded(run())

    async def _read(self, work: Callable[[_Transaction], Awaitable[T]]) -> T:
        """Run several reads on one consistent snapshot."""

        async def run() -> T:
            async with self._read_lock:
                await self._reader.execute("BEGIN")
                try:
                    return await work(_Transaction(self._reader))
                finally:
                    await self._reader.execute("COMMIT")

        return await self._shielded(run())

    # -- generate --------------------------------------------------------------------

    async def idempotent_answer(self, key: str) -> tuple[str, dict[str, Any]] | None:
        """The fingerprint and course stored under an Idempotency-Key less than 24 h old."""
        row = await self._read(
            lambda txn: txn.fetchone(
                "SELECT fingerprint, response FROM idempotency_keys "
                "WHERE key = ? AND created_at > ?",
                (key, time.time() - IDEMPOTENCY_TTL),
            )
        )
        return (row["fingerprint"], json.loads(row["response"])) if row else None

    async def create_course(
        self, topic: str, outline: Outline, *, idempotency: tuple[str, str] | None = None
    ) -> tuple[dict[str, Any], bool]:
        """Store a course, its pending lessons and a running job in one transaction.

        With an (Idempotency-Key, fingerprint) whose answer is already stored, nothing is
        created and the stored course comes back; the flag says whether it was created.
        """
        job_id = str(uuid.uuid4())

        async def work(txn: _Transaction) -> tuple[dict[str, Any], bool]:
            now = utcnow()
            if idempotency:
                await txn.db.execute(
                    "DELETE FROM idempotency_keys WHERE created_at <= ?",
                    (time.time() - IDEMPOTENCY_TTL,),
                )
                stored = await txn.fetchone(
                    "SELECT response FROM idempotency_keys WHERE key = ?", (idempotency[0],)
                )
                if stored:
                    return json.loads(stored["response"]), False
            cursor = await txn.db.execute(
                "INSERT INTO courses (topic, title, description, created_at) VALUES (?, ?, ?, ?)",
                (topic, outline.title, outline.description, now),
            )
            course_id = cursor.lastrowid
            await txn.db.executemany(
                "INSERT INTO lessons (course_id, position, title, description, content_status, "
                "updated_at) VALUES (?, ?, ?, ?, 'pending', ?)",
                [
                    (course_id, position, plan.title, plan.description, now)
                    for position, plan in enumerate(outline.lessons, start=1)
                ],
            )
            await txn.db.execute(
                "INSERT INTO content_generation_jobs (id, course_id, status, total_lessons, "
                "started_at) VALUES (?, ?, 'running', ?, ?)",
                (job_id, course_id, len(outline.lessons), now),
            )
            assert course_id is not None
            course = await _course_view(txn, course_id)
            assert course is not None
            await txn.emit(
                "course", {"course_id": course_id, "action": "created"},
                job_id=None, course_id=course_id,
            )  # fmt: skip
            await txn.emit("job", course["job"], job_id=job_id, course_id=course_id)
            if idempotency:
                await txn.db.execute(
                    "INSERT INTO idempotency_keys (key, fingerprint, response, created_at) "
                    "VALUES (?, ?, ?, ?)",
                    (idempotency[0], idempotency[1], json.dumps(course), time.time()),
                )
            return course, True

        return await self._write(work)

    # -- the runner's transitions ----------------------------------------------------

    async def claim_next_lesson(self, job_id: str) -> ClaimedLesson | None:
        """Move the job's first pending lesson to `generating`, if the job is running."""

        async def work(txn: _Transaction) -> ClaimedLesson | None:
            row = await txn.fetchone(
                "UPDATE lessons SET content_status = 'generating', content_error = NULL, "
                "attempt = attempt + 1, updated_at = ? "
                "WHERE id = (SELECT l.id FROM lessons l JOIN content_generation_jobs j "
                "ON j.course_id = l.course_id WHERE j.id = ? AND j.status = 'running' "
                "AND l.content_status = 'pending' ORDER BY l.position, l.id LIMIT 1) "
                "RETURNING id, course_id, position, attempt, content_status, content_error",
                (utcnow(), job_id),
            )
            if row is None:
                return None
            await txn.lesson_changed(job_id, row["course_id"], row)
            return ClaimedLesson(row["id"], row["position"], row["attempt"])

        return await self._write(work)

    async def finish_lesson(
        self,
        job_id: str,
        lesson_id: int,
        attempt: int,
        *,
        content: str | None = None,
        error: str | None = None,
    ) -> bool:
        """Store a lesson's result, unless a newer attempt or a cancel superseded this one."""

        async def work(txn: _Transaction) -> bool:
            row = await txn.fetchone(
                "UPDATE lessons SET content_status = ?, content = ?, content_error = ?, "
                "updated_at = ? WHERE id = ? AND attempt = ? AND content_status = 'generating' "
                "RETURNING id, course_id, position, content_status, content_error",
                ("complete" if error is None else "error", content, error, utcnow(),
                 lesson_id, attempt),
            )  # fmt: skip
            if row is None:
                return False
            await txn.lesson_changed(job_id, row["course_id"], row)
            await txn.refresh_job(job_id)
            return True

        return await self._write(work)

    async def fail_job(self, job_id: str, message: str) -> None:
        """End a job that cannot go on: its unfinished lessons fail with `message`."""

        async def work(txn: _Transaction) -> None:
            rows = await txn.fetchall(
                "UPDATE lessons SET content_status = 'error', content_error = ?, updated_at = ? "
                "WHERE course_id = (SELECT course_id FROM content_generation_jobs WHERE id = ?) "
                "AND content_status IN ('pending', 'generating') "
                "RETURNING id, course_id, position, content_status, content_error",
                (message, utcnow(), job_id),
            )
            for row in rows:
                await txn.lesson_changed(job_id, row["course_id"], row)
            await txn.refresh_job(job_id)
            await txn.db.execute(
                "UPDATE content_generation_jobs SET error_message = ? WHERE id = ?",
                (message, job_id),
            )

        await self._write(work)

    async def requeue_in_flight(self) -> list[str]:
        """Put every `generating` lesson back to `pending`; the running jobs, oldest first.

        Used on start (after a crash) and on shutdown, so that no lesson stays stuck.
        """

        async def work(txn: _Transaction) -> list[str]:
            rows = await txn.fetchall(
                "UPDATE lessons SET content_status = 'pending', updated_at = ? "
                "WHERE content_status = 'generating' "
                f"RETURNING id, course_id, position, content_status, content_error, "
                f"{_LATEST_JOB.format(course='lessons.course_id')} AS job_id",
                (utcnow(),),
            )
            for row in sorted(rows, key=lambda r: r["id"]):
                if row["job_id"] is not None:
                    await txn.lesson_changed(row["job_id"], row["course_id"], row)
            running = await txn.fetchall(
                "SELECT id FROM content_generation_jobs WHERE status = 'running' "
                "ORDER BY started_at, rowid"
            )
            for job in running:
                await txn.refresh_job(job["id"])
            return [job["id"] for job in running]

        return await self._write(work)

    # -- the user's actions -----------------------------------------------------------

    async def cancel_job(self, job_id: str) -> dict[str, Any]:
        """Cancel a running job; its `generating` lessons go back to `pending`."""

        async def work(txn: _Transaction) -> dict[str, Any]:
            job = await txn.fetchone(
                "UPDATE content_generation_jobs SET status = 'cancelled', completed_at = ? "
                "WHERE id = ? AND status = 'running' RETURNING course_id",
                (utcnow(), job_id),
            )
            if job is None:
                status = await txn.fetchone(
                    "SELECT status FROM content_generation_jobs WHERE id = ?", (job_id,)
                )
                if status is None:
                    raise NotFound("no such job")
                raise Conflict(f"the job is {status['status']}, not running; nothing to cancel")
            rows = await txn.fetchall(
                "UPDATE lessons SET content_status = 'pending', updated_at = ? "
                "WHERE course_id = ? AND content_status = 'generating' "
                "RETURNING id, course_id, position, content_status, content_error",
                (utcnow(), job["course_id"]),
            )
            for row in sorted(rows, key=lambda r: r["position"]):
                await txn.lesson_changed(job_id, job["course_id"], row)
            progress = await txn.refresh_job(job_id)
            await txn.emit("job", progress, job_id=job_id, course_id=job["course_id"])
            return progress

        return await self._write(work)

    async def retry_lesson(self, lesson_id: int) -> str:
        """Queue a failed (or complete) lesson again; its job runs again. Returns the job id."""

        async def work(txn: _Transaction) -> str:
            lesson = await txn.fetchone(
                f"SELECT content_status, course_id, {_LATEST_JOB.format(course='course_id')} "
                "AS job_id FROM lessons WHERE id = ?",
                (lesson_id,),
            )
            if lesson is None or lesson["job_id"] is None:
                raise NotFound("no such lesson")
            row = await txn.fetchone(
                "UPDATE lessons SET content_status = 'pending', content = NULL, "
                "content_error = NULL, updated_at = ? "
                "WHERE id = ? AND content_status IN ('error', 'complete') "
                "RETURNING id, course_id, position, content_status, content_error",
                (utcnow(), lesson_id),
            )
            if row is None:
                raise Conflict(
                    f"the lesson is {lesson['content_status']}; it can be retried once it "
                    "has finished"
                )
            job_id: str = lesson["job_id"]
            await txn.lesson_changed(job_id, row["course_id"], row)
            await txn.refresh_job(job_id, reopen=True)
            return job_id

        return await self._write(work)

    async def retry_job(self, job_id: str) -> int:
        """Queue every failed lesson again (and a cancelled job's pending ones)."""

        async def work(txn: _Transaction) -> int:
            job = await txn.fetchone(
                "SELECT status, course_id FROM content_generation_jobs WHERE id = ?", (job_id,)
            )
            if job is None:
                raise NotFound("no such job")
            rows = await txn.fetchall(
                "UPDATE lessons SET content_status = 'pending', content_error = NULL, "
                "updated_at = ? WHERE course_id = ? AND content_status = 'error' "
                "RETURNING id, course_id, position, content_status, content_error",
                (utcnow(), job["course_id"]),
            )
            retried = len(rows)
            if job["status"] == "cancelled":
                waiting = await txn.fetchone(
                    "SELECT count(*) AS n FROM lessons WHERE course_id = ? "
                    "AND content_status = 'pending'",
                    (job["course_id"],),
                )
                assert waiting is not None
                retried = waiting["n"]
            if retried == 0:
                raise Conflict("the job has no failed or unfinished lessons to retry")
            for row in sorted(rows, key=lambda r: r["position"]):
                await txn.lesson_changed(job_id, job["course_id"], row)
            await txn.refresh_job(job_id, reopen=True)
            return retried

        return await self._write(work)

    async def delete_course(self, course_id: int) -> None:
        """Delete a course with its lessons, jobs and events; log that it is gone."""

        async def work(txn: _Transaction) -> None:
            deleted = await txn.fetchone(
                "DELETE FROM courses WHERE id = ? RETURNING id", (course_id,)
            )
            if deleted is None:
                raise NotFound("no such course")
            # Explicit, for databases created before their foreign keys cascaded.
            await txn.db.execute(
                "DELETE FROM content_generation_jobs WHERE course_id = ?", (course_id,)
            )
            await txn.db.execute("DELETE FROM lessons WHERE course_id = ?", (course_id,))
            await txn.db.execute("DELETE FROM events WHERE course_id = ?", (course_id,))
            txn.forgotten_courses.append(course_id)
            await txn.emit(
                "course", {"course_id": course_id, "action": "deleted"},
                job_id=None, course_id=course_id,
            )  # fmt: skip

        await self._write(work)

    # -- reads ---------------------------------------------------------------------------

    async def list_courses(self) -> tuple[list[dict[str, Any]], int]:
        """Every course, newest first, with its lesson count and job; and the newest event id."""

        async def work(txn: _Transaction) -> tuple[list[dict[str, Any]], int]:
            rows = await txn.fetchall(
                "SELECT c.id, c.topic, c.title, c.description, c.created_at, "
                "(SELECT count(*) FROM lessons l WHERE l.course_id = c.id) AS lesson_count, "
                f"{_LATEST_JOB.format(course='c.id')} AS job_id FROM courses c ORDER BY c.id DESC"
            )
            jobs = {
                job["id"]: progress_view(job)
                for job in await txn.fetchall(
                    f"SELECT {_JOB_COLUMNS} FROM content_generation_jobs "
                    "WHERE id IN (SELECT value FROM json_each(?))",
                    (json.dumps([row["job_id"] for row in rows]),),
                )
            }
            courses = [
                {
                    "id": row["id"],
                    "topic": row["topic"],
                    "title": row["title"],
                    "description": row["description"],
                    "created_at": row["created_at"],
                    "lesson_count": row["lesson_count"],
                    "job": jobs.get(row["job_id"]),
                }
                for row in rows
            ]
            return courses, await _newest_event_id(txn)

        return await self._read(work)

    async def get_course(self, course_id: int) -> dict[str, Any] | None:
        return await self._read(lambda txn: _course_view(txn, course_id))

    async def get_lesson(self, lesson_id: int) -> dict[str, Any] | None:
        async def work(txn: _Transaction) -> dict[str, Any] | None:
            row = await txn.fetchone(
                "SELECT id, course_id, position, title, description, content, content_status, "
                f"content_error, updated_at, {_LATEST_JOB.format(course='course_id')} AS job_id "
                "FROM lessons WHERE id = ?",
                (lesson_id,),
            )
            if row is None:
                return None
            lesson = dict(row)
            if lesson["content_status"] != "complete":
                lesson["content"] = None
            return lesson

        return await self._read(work)

    async def get_progress(self, job_id: str) -> dict[str, Any] | None:
        async def work(txn: _Transaction) -> dict[str, Any] | None:
            job = await txn.fetchone(
                f"SELECT {_JOB_COLUMNS} FROM content_generation_jobs WHERE id = ?", (job_id,)
            )
            return progress_view(job) if job else None

        return await self._read(work)

    async def job_snapshot(self, job_id: str) -> tuple[dict[str, Any], int] | None:
        """A job's progress and lessons, with the id of its newest event, on one snapshot."""

        async def work(txn: _Transaction) -> tuple[dict[str, Any], int] | None:
            job = await txn.fetchone(
                f"SELECT {_JOB_COLUMNS} FROM content_generation_jobs WHERE id = ?", (job_id,)
            )
            if job is None:
                return None
            lessons = await txn.fetchall(
                "SELECT id, position, title, content_status, content_error FROM lessons "
                "WHERE course_id = ? ORDER BY position, id",
                (job["course_id"],),
            )
            newest = await txn.fetchone(
                "SELECT coalesce(max(id), 0) AS id FROM events WHERE job_id = ?", (job_id,)
            )
            assert newest is not None
            snapshot = {"job": progress_view(job), "lessons": [dict(row) for row in lessons]}
            return snapshot, newest["id"]

        return await self._read(work)

    async def course_outline(self, job_id: str) -> CourseOutline | None:
        """The topic and outline of a job's course, for the lesson prompts."""

        async def work(txn: _Transaction) -> CourseOutline | None:
            course = await txn.fetchone(
                "SELECT c.id, c.topic, c.title, c.description FROM courses c "
                "JOIN content_generation_jobs j ON j.course_id = c.id WHERE j.id = ?",
                (job_id,),
            )
            if course is None:
                return None
            lessons = await txn.fetchall(
                "SELECT id, title, description FROM lessons WHERE course_id = ? "
                "ORDER BY position, id",
                (course["id"],),
            )
            outline = Outline(
                title=course["title"],
                description=course["description"],
                lessons=tuple(LessonPlan(row["title"], row["description"]) for row in lessons),
            )
            return CourseOutline(course["topic"], outline, tuple(row["id"] for row in lessons))

        return await self._read(work)

    async def events_after(
        self, cursor: int, job_id: str | None = None, limit: int = EVENT_PAGE
    ) -> list[Event]:
        """Up to `limit` events after `cursor` (of one job, if given), from the log."""
        sql = "SELECT id, job_id, course_id, type, data FROM events WHERE id > ? "
        params: tuple[Any, ...] = (cursor,)
        if job_id is not None:
            sql += "AND job_id = ? "
            params = (cursor, job_id)
        rows = await self._read(
            lambda txn: txn.fetchall(sql + "ORDER BY id LIMIT ?", (*params, limit))
        )
        return [Event.from_row(*row) for row in rows]

    async def newest_event_id(self) -> int:
        return await self._read(_newest_event_id)

    async def count_running_jobs(self) -> int:
        row = await self._read(
            lambda txn: txn.fetchone(
                "SELECT count(*) FROM content_generation_jobs WHERE status = 'running'"
            )
        )
        return int(row[0]) if row else 0


async def _newest_event_id(txn: _Transaction) -> int:
    row = await txn.fetchone("SELECT coalesce(max(id), 0) AS id FROM events")
    return int(row["id"]) if row else 0


async def _course_view(txn: _Transaction, course_id: int) -> dict[str, Any] | None:
    course = await txn.fetchone(
        "SELECT id, topic, title, description, created_at, "
        f"{_LATEST_JOB.format(course='courses.id')} AS job_id FROM courses WHERE id = ?",
        (course_id,),
    )
    if course is None:
        return None
    job = await txn.fetchone(
        f"SELECT {_JOB_COLUMNS} FROM content_generation_jobs WHERE id = ?", (course["job_id"],)
    )
    lessons = await txn.fetchall(
        "SELECT id, position, title, description, content_status, content_error FROM lessons "
        "WHERE course_id = ? ORDER BY position, id",
        (course_id,),
    )
    view = {key: course[key] for key in ("id", "topic", "title", "description", "created_at")}
    view["job"] = progress_view(job) if job else None
    view["lessons"] = [dict(row) for row in lessons]
    return view
