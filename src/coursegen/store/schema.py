"""Opening the database: pragmas, schema.sql, and columns older databases lack."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiosqlite

from coursegen.resources import schema_path

logger = logging.getLogger(__name__)

# Columns added after the first release: (table, column, declaration).
_COLUMNS_ADDED_LATER = (("lessons", "attempt", "INTEGER NOT NULL DEFAULT 0"),)


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
    """Apply schema.sql (every statement is idempotent) and add columns added since."""
    await db.executescript(schema_path().read_text())
    for table, column, declaration in _COLUMNS_ADDED_LATER:
        rows = await db.execute_fetchall(f"PRAGMA table_info({table})")
        if column not in {row["name"] for row in rows}:
            logger.info("adding column %s.%s to an older database", table, column)
            await db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
