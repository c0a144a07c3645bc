"""Opening the database: pragmas, schema.sql, and bringing older databases up to date."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import aiosqlite

from coursegen.resources import schema_path

logger = logging.getLogger(__name__)

# Columns added after the first release: (table, column, declaration).
_COLUMNS_ADDED_LATER = (
    ("lessons", "attempt", "INTEGER NOT NULL DEFAULT 0"),
    ("lessons", "priority", "INTEGER"),
    ("courses", "mode", "TEXT NOT NULL DEFAULT 'stream' CHECK (mode IN ('stream', 'batch'))"),
    ("lessons", "model", "TEXT"),
    ("lessons", "stop_reason", "TEXT"),
    ("lessons", "duration_ms", "INTEGER"),
    ("lessons", "batch_id", "TEXT"),
    ("courses", "level", "TEXT NOT NULL DEFAULT 'beginner' "
     "CHECK (level IN ('beginner', 'intermediate', 'advanced'))"),
    ("courses", "language", "TEXT NOT NULL DEFAULT 'English'"),
    ("courses", "instructions", "TEXT NOT NULL DEFAULT ''"),
    ("courses", "quizzes", "INTEGER NOT NULL DEFAULT 1"),
    ("lessons", "instructions", "TEXT"),
    ("lessons", "quiz_status", "TEXT NOT NULL DEFAULT 'none' "
     "CHECK (quiz_status IN ('none', 'pending', 'generating', 'complete', 'error'))"),
    ("lessons", "quiz", "TEXT"),
    ("lessons", "quiz_error", "TEXT"),
    ("lessons", "quiz_attempt", "INTEGER NOT NULL DEFAULT 0"),
)  # fmt: skip
# Indexes on columns added later: made once those columns exist.
_INDEXES_ADDED_LATER = (
    "CREATE INDEX IF NOT EXISTS lessons_by_priority ON lessons(priority) "
    "WHERE priority IS NOT NULL",
)
# Tables whose ids became AUTOINCREMENT after the first release.
_IDS_NEVER_REUSED = ("courses", "lessons")
_INTEGER_KEY = re.compile(r"\bid\s+INTEGER\s+PRIMARY\s+KEY\b", re.IGNORECASE)
_TABLE_NAME = re.compile(r"^\s*CREATE\s+TABLE\s+(\"?)\w+\1", re.IGNORECASE)


async def connect(path: Path, *, read_only: bool) -> aiosqlite.Connection:
    # isolation_level=None: transactions are begun and ended explicitly, nothing implicit.
    if not read_only:  # `--db data/courses.db` should not need a mkdir first
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
    db = await aiosqlite.connect(path, isolation_level=None)
    try:
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
    except BaseException:
        await db.close()  # its thread would otherwise keep the process alive
        raise
    return db


async def migrate(db: aiosqlite.Connection) -> None:
    """Apply schema.sql (every statement is idempotent) and what changed since."""
    script = schema_path().read_text()
    await db.executescript(script)
    for table, column, declaration in _COLUMNS_ADDED_LATER:
        rows = await db.execute_fetchall(f"PRAGMA table_info({table})")
        if column not in {row["name"] for row in rows}:
            logger.info("adding column %s.%s to an older database", table, column)
            await db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
    for index in _INDEXES_ADDED_LATER:
        await db.execute(index)
    rebuilt = [table for table in _IDS_NEVER_REUSED if await _never_reuse_ids(db, table)]
    if rebuilt:
        # The rebuilt tables' indexes (and triggers) went with the old ones.
        await db.executescript(script)
        for index in _INDEXES_ADDED_LATER:
            await db.execute(index)
    await _index_every_course(db)


async def _index_every_course(db: aiosqlite.Connection) -> None:
    """Fill the course search index when it does not hold one row per course: it is new
    to an older database, or a crash came between its creation and its filling.

    The triggers keep it in step from then on. `courses_search_docsize` is FTS5's own
    table of one row per indexed course (the search table itself would count `courses`).
    """
    rows = await db.execute_fetchall(
        "SELECT (SELECT count(*) FROM courses) AS courses, "
        "(SELECT count(*) FROM courses_search_docsize) AS indexed"
    )
    counts = next(iter(rows))
    if counts["courses"] != counts["indexed"]:
        logger.info("indexing %d courses for search", counts["courses"])
        await db.execute("INSERT INTO courses_search (courses_search) VALUES ('rebuild')")


async def _never_reuse_ids(db: aiosqlite.Connection, table: str) -> bool:
    """Rebuild an older table with AUTOINCREMENT ids (SQLite cannot alter a key in place).

    SQLite's documented procedure: with foreign keys off, copy the rows into a new
    table made from the old one's own definition (so columns we do not know survive),
    drop the old table, rename the new one, and check every foreign key before commit.
    """
    rows = list(
        await db.execute_fetchall(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        )
    )
    definition: str = rows[0]["sql"]
    if "AUTOINCREMENT" in definition.upper():
        return False
    keyed = _INTEGER_KEY.sub(r"\g<0> AUTOINCREMENT", definition, count=1)
    renamed = _TABLE_NAME.sub(f"CREATE TABLE {table}__rebuilt", keyed, count=1)
    if keyed == definition or renamed == keyed:
        logger.warning("cannot tell %s's id column apart; its ids may be reused", table)
        return False
    logger.info("rebuilding %s of an older database so that its ids are never reused", table)
    await db.execute("PRAGMA foreign_keys = OFF")
    try:
        await db.execute("BEGIN IMMEDIATE")
        try:
            await db.execute(renamed)
            await db.execute(f"INSERT INTO {table}__rebuilt SELECT * FROM {table}")
            await db.execute(f"DROP TABLE {table}")
            await db.execute(f"ALTER TABLE {table}__rebuilt RENAME TO {table}")
            broken = await db.execute_fetchall("PRAGMA foreign_key_check")
            if broken:
                raise RuntimeError(f"rebuilding {table} would break foreign keys: {broken}")
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise
    finally:
        await db.execute("PRAGMA foreign_keys = ON")
    return True
