"""A write (or read) transaction on one connection, and the events it logs.

The statements of the store are written once, in SQL both engines speak (with `?`
placeholders); each engine's transaction runs them on its own connection.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import aiosqlite

from coursegen.domain import Event, Progress, Usage
from coursegen.events import encode_data
from coursegen.store.base import USAGE_SUMS, Row, job_after, progress_of, usage_of

# The newest job of a course (one per course today; older databases may hold more).
LATEST_JOB = (
    "(SELECT j.id FROM content_generation_jobs j WHERE j.course_id = {course} "
    "ORDER BY j.started_at DESC, j.rowid DESC LIMIT 1)"
)
# SQLite allows 32,766 parameters a statement; five an event.
_EVENTS_PER_INSERT = 1000
JOB_COLUMNS = (
    "id, course_id, status, total_lessons, completed_lessons, failed_lessons, "
    "error_message, started_at, completed_at"
)


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# What an UPDATE of lessons returns, so that `lesson_changed` can announce the change.
LESSON_CHANGE = "RETURNING id, course_id, position, title, content_status, content_error"
# What an UPDATE of a lesson's quiz returns, for `quiz_changed`.
QUIZ_CHANGE = "RETURNING id, course_id, quiz_status, quiz_error"


def _lesson_event(job_id: str, course_id: int, row: Row) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "course_id": course_id,
        "lesson_id": row["id"],
        "position": row["position"],
        "content_status": row["content_status"],
        "content_error": row["content_error"],
    }


class Transaction(abc.ABC):
    """An open transaction, and the events it will log and publish once committed."""

    def __init__(self) -> None:
        self._emitted: list[tuple[str | None, int | None, str, str, str]] = []
        self.events: list[Event] = []

    def emit(
        self, type: str, data: dict[str, Any], *, job_id: str | None, course_id: int | None
    ) -> None:
        """Log an event with this transaction's changes (written by `write_events`)."""
        self._emitted.append((job_id, course_id, type, encode_data(data), utcnow()))

    async def write_events(self) -> None:
        """Insert the emitted events, in order, in one statement per page of them."""
        for start in range(0, len(self._emitted), _EVENTS_PER_INSERT):
            page = self._emitted[start : start + _EVENTS_PER_INSERT]
            values = ", ".join(["(?, ?, ?, ?, ?)"] * len(page))
            rows = await self.fetchall(
                "INSERT INTO events (job_id, course_id, type, data, created_at) "
                f"VALUES {values} RETURNING id",
                [value for event in page for value in event],
            )
            # Rows get rising ids in VALUES order; RETURNING's order is not promised.
            ids = sorted(row["id"] for row in rows)
            self.events += [
                Event(id, job_id, course_id, type, data)
                for id, (job_id, course_id, type, data, _) in zip(ids, page, strict=True)
            ]
        self._emitted.clear()

    # Each engine's transaction runs the statements on its own connection.

    @abc.abstractmethod
    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None: ...

    @abc.abstractmethod
    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]: ...

    @abc.abstractmethod
    async def execute(self, sql: str, params: Iterable[Any] = ()) -> None: ...

    @abc.abstractmethod
    async def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None: ...

    @abc.abstractmethod
    async def lock_job(self, job_id: str) -> None:
        """Hold the job's row until commit, before touching its lessons.

        Every writer of a job's lessons locks the job first, so that concurrent writers
        (a cancel and a finishing lesson) queue up instead of deadlocking.
        """

    def lesson_changed(
        self,
        job_id: str,
        course_id: int,
        row: Row,
        usage: Usage | None = None,
        *,
        change: str | None = None,
    ) -> None:
        """Log a `lesson` event; one that ends a call carries the lesson's `usage`, an
        author's edit its `change` (added, edited, moved, removed)."""
        data = _lesson_event(job_id, course_id, row)
        if usage is not None:
            data["usage"] = usage.to_json()
        if change is not None:
            data["change"] = change
            data["title"] = row["title"]
        self.emit("lesson", data, job_id=job_id, course_id=course_id)

    def quiz_changed(
        self, job_id: str, course_id: int, row: Row, usage: Usage | None = None
    ) -> None:
        """Log a `quiz` event (SPEC 9) from a row with QUIZ_CHANGE's columns; one that ends
        a call carries the lesson's `usage`."""
        data: dict[str, Any] = {
            "job_id": job_id,
            "course_id": course_id,
            "lesson_id": row["id"],
            "quiz_status": row["quiz_status"],
            "quiz_error": row["quiz_error"],
        }
        if usage is not None:
            data["usage"] = usage.to_json()
        self.emit("quiz", data, job_id=job_id, course_id=course_id)

    async def usage(self, *, course_id: int | None = None, lesson_id: int | None = None) -> Usage:
        """What a course (or one lesson) has spent, as committed so far in this transaction."""
        column, key = ("course_id", course_id) if lesson_id is None else ("lesson_id", lesson_id)
        return usage_of(
            await self.fetchone(f"SELECT {USAGE_SUMS} FROM model_calls WHERE {column} = ?", (key,))
        )

    async def refresh_job(self, job_id: str, *, reopen: bool = False) -> Progress:
        """Derive the job's counters and status from its lessons; emit what changed."""
        job = await self.fetchone(
            f"SELECT {JOB_COLUMNS}, "
            "(SELECT count(*) FROM lessons l WHERE l.course_id = j.course_id) AS lessons, "
            "(SELECT count(*) FROM lessons l WHERE l.course_id = j.course_id "
            " AND l.content_status = 'complete') AS complete, "
            "(SELECT count(*) FROM lessons l WHERE l.course_id = j.course_id "
            " AND l.content_status = 'error') AS failed, "
            "(SELECT count(*) FROM lessons l WHERE l.course_id = j.course_id "
            " AND l.quiz_status IN ('pending', 'generating')) AS quizzing "
            "FROM content_generation_jobs j WHERE id = ?",
            (job_id,),
        )
        assert job is not None
        new, counters_changed, status_changed = job_after(
            job,
            job["lessons"],
            job["complete"],
            job["failed"],
            reopen=reopen,
            busy=job["quizzing"] > 0,
            now=utcnow(),
        )
        if counters_changed or status_changed:
            await self.execute(
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
        progress = progress_of(new, await self.usage(course_id=job["course_id"]))
        if counters_changed:
            self.emit("progress", progress.to_json(), job_id=job_id, course_id=job["course_id"])
        if status_changed:
            self.emit("job", progress.to_json(), job_id=job_id, course_id=job["course_id"])
        return progress


class SqliteTransaction(Transaction):
    """A transaction on an aiosqlite connection."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        super().__init__()
        self.db = db

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        # One trip to the connection's thread, where a cursor costs three (execute,
        # fetch, close); each trip is ~20 us of the event loop's time.
        rows = await self.db.execute_fetchall(sql, tuple(params))
        return next(iter(rows), None)

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        return list(await self.db.execute_fetchall(sql, tuple(params)))

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> None:
        await self.db.execute(sql, tuple(params))

    async def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        await self.db.executemany(sql, [tuple(row) for row in rows])

    async def lock_job(self, job_id: str) -> None:
        return None  # one writer at a time owns the file: the transaction is the lock
