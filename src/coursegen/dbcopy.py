"""`coursegen copy`: move a SQLite database into an empty PostgreSQL database, ids and all.

Every course, lesson, job, event, idempotency key, model call and batch keeps its id, so bookmarked
courses open after the move and a client resumes its streams with the same cursor.
Any older SQLite schema is read as it is (the source is never written); a lesson
that a crash left `generating` arrives `pending`, as a restart would leave it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# In foreign-key order, with the columns PostgreSQL takes; the id columns are copied.
TABLES: dict[str, tuple[str, ...]] = {
    "courses": (
        "id", "topic", "title", "description", "created_at", "mode", "level", "language",
        "instructions", "quizzes",
    ),
    "lessons": (
        "id", "course_id", "position", "title", "description", "content", "content_status",
        "content_error", "updated_at", "attempt", "priority", "model", "stop_reason",
        "duration_ms", "batch_id", "instructions", "quiz_status", "quiz", "quiz_error",
        "quiz_attempt",
    ),
    "content_generation_jobs": (
        "id", "course_id", "status", "total_lessons", "completed_lessons", "failed_lessons",
        "started_at", "completed_at", "error_message",
    ),
    "events": ("id", "job_id", "course_id", "type", "data", "created_at"),
    "idempotency_keys": ("key", "fingerprint", "response", "created_at"),
    "model_calls": (
        "id", "course_id", "lesson_id", "kind", "model", "batch", "input_tokens",
        "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "cost_usd",
        "stop_reason", "duration_ms", "created_at",
    ),
    "batches": ("id", "course_id", "job_id", "status", "created_at"),
    "lesson_versions": (
        "id", "lesson_id", "version", "created_at", "source", "instructions", "content",
    ),
}  # fmt: skip
# Columns an older database may lack, and what they mean there.
_DEFAULTS: dict[str, Any] = {
    "attempt": 0, "priority": None, "description": "", "mode": "stream", "model": None,
    "stop_reason": None, "duration_ms": None, "batch_id": None, "level": "beginner",
    "language": "English", "instructions": "", "quizzes": 1, "quiz_status": "none",
    "quiz": None, "quiz_error": None, "quiz_attempt": 0,
}  # fmt: skip
_IDENTITY_TABLES = ("courses", "lessons", "events", "lesson_versions")


class CopyError(Exception):
    """The copy cannot be made; the message says why and what to do."""


@dataclass(frozen=True)
class Copied:
    counts: dict[str, int]


def read_sqlite(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in TABLES' columns (those an older schema lacks filled in)."""
    if not path.is_file():
        raise CopyError(f"there is no SQLite database at {path}")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        present = {
            row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if "courses" not in present:
            raise CopyError(f"{path} is not a coursegen database (it has no courses table)")
        rows: dict[str, list[tuple[Any, ...]]] = {}
        for table, columns in TABLES.items():
            if table not in present:
                rows[table] = []
                continue
            have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            select = ", ".join(column if column in have else "?" for column in columns)
            missing = [_DEFAULTS.get(column) for column in columns if column not in have]
            order = "rowid"  # insertion order: the newest job of a course stays the newest
            rows[table] = db.execute(
                f"SELECT {select} FROM {table} ORDER BY {order}", missing
            ).fetchall()
    finally:
        db.close()
    # What a restart would do with a lesson cut off mid-call.
    rows["lessons"] = [_requeued(row) for row in rows["lessons"]]
    return rows


def _column(column: str, have: set[str]) -> str:
    if column not in have:
        return "?"
    if column == "description":  # older rows may hold NULL where PostgreSQL says NOT NULL
        return "coalesce(description, '')"
    return column


def _requeued(row: tuple[Any, ...]) -> tuple[Any, ...]:
    columns = TABLES["lessons"]
    if row[columns.index("content_status")] != "generating":
        return row
    if row[columns.index("batch_id")] is not None:
        return row  # its Message Batch is polled on where it arrives
    changed = list(row)
    changed[columns.index("content_status")] = "pending"
    changed[columns.index("content")] = None
    return tuple(changed)


async def copy_database(source: Path, target: str) -> Copied:
    """Copy the SQLite file at `source` into the empty PostgreSQL database at `target`."""
    import asyncpg  # the postgres extra

    from coursegen.resources import postgres_schema_path

    rows = await asyncio.to_thread(read_sqlite, source)
    conn = await asyncpg.connect(target)
    try:
        async with conn.transaction():
            await conn.execute(postgres_schema_path().read_text())
            for table in TABLES:
                if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table})"):
                    raise CopyError(
                        f"the target database already holds {table}; coursegen copy only "
                        "fills an empty database, so nothing was copied"
                    )
            for table, columns in TABLES.items():
                if rows[table]:
                    try:
                        await conn.copy_records_to_table(
                            table, records=rows[table], columns=columns
                        )
                    except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as exc:
                        raise CopyError(
                            f"a row of {table} cannot be copied ({exc}); nothing was copied"
                        ) from None
            for table in _IDENTITY_TABLES:
                # New rows continue after the copied ids, never reusing one.
                await conn.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
                )
    finally:
        await conn.close()
    return Copied({table: len(rows[table]) for table in TABLES})
