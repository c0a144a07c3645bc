"""A write (or read) transaction on one connection, and the views its rows become."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import aiosqlite

from coursegen.domain import Event, JobStatus, LessonStatus, LessonSummary, Progress
from coursegen.events import encode_data

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


def progress_of(row: aiosqlite.Row | dict[str, Any]) -> Progress:
    """A job row (JOB_COLUMNS) as its progress."""
    return Progress(
        job_id=row["id"],
        course_id=row["course_id"],
        status=JobStatus(row["status"]),
        total_lessons=row["total_lessons"],
        completed_lessons=row["completed_lessons"],
        failed_lessons=row["failed_lessons"],
        error_message=row["error_message"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
    )


def summary_of(row: aiosqlite.Row | dict[str, Any]) -> LessonSummary:
    return LessonSummary(
        id=row["id"],
        position=row["position"],
        title=row["title"],
        description=row["description"],
        content_status=LessonStatus(row["content_status"]),
        content_error=row["content_error"],
    )


# What an UPDATE of lessons returns, so that `lesson_changed` can announce the change.
LESSON_CHANGE = "RETURNING id, course_id, position, content_status, content_error"


def _lesson_event(job_id: str, course_id: int, row: aiosqlite.Row) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "course_id": course_id,
        "lesson_id": row["id"],
        "position": row["position"],
        "content_status": row["content_status"],
        "content_error": row["content_error"],
    }


class Transaction:
    """An open transaction, and the events it will log and publish once committed."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db
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

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Row | None:
        # One trip to the connection's thread, where a cursor costs three (execute,
        # fetch, close); each trip is ~20 us of the event loop's time.
        rows = await self.db.execute_fetchall(sql, tuple(params))
        return next(iter(rows), None)

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        return list(await self.db.execute_fetchall(sql, tuple(params)))

    def lesson_changed(self, job_id: str, course_id: int, row: aiosqlite.Row) -> None:
        self.emit(
            "lesson", _lesson_event(job_id, course_id, row), job_id=job_id, course_id=course_id
        )

    async def refresh_job(self, job_id: str, *, reopen: bool = False) -> Progress:
        """Derive the job's counters and status from its lessons; emit what changed."""
        job = await self.fetchone(
            f"SELECT {JOB_COLUMNS}, "
            "(SELECT count(*) FROM lessons l WHERE l.course_id = j.course_id) AS lessons, "
            "(SELECT count(*) FROM lessons l WHERE l.course_id = j.course_id "
            " AND l.content_status = 'complete') AS complete, "
            "(SELECT count(*) FROM lessons l WHERE l.course_id = j.course_id "
            " AND l.content_status = 'error') AS failed "
            "FROM content_generation_jobs j WHERE id = ?",
            (job_id,),
        )
        assert job is not None
        counts = {"total": job["lessons"], "completed": job["complete"], "failed": job["failed"]}
        failed = counts["failed"]
        new = {key: job[key] for key in JOB_COLUMNS.split(", ")}
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
        progress = progress_of(new)
        if counters_changed:
            self.emit("progress", progress.to_json(), job_id=job_id, course_id=job["course_id"])
        if status_changed:
            self.emit("job", progress.to_json(), job_id=job_id, course_id=job["course_id"])
        return progress
