"""The database: the one owner of every SQL statement, behind one interface."""

from pathlib import Path

from coursegen.store.base import EVENT_PAGE, OnCommit, Store
from coursegen.store.sqlite import SqliteStore


async def open_store(db: Path, on_commit: OnCommit) -> Store:
    """The store the setting names: the SQLite file at `db` (created if needed)."""
    return await SqliteStore.open(db, on_commit)


__all__ = ["EVENT_PAGE", "OnCommit", "SqliteStore", "Store", "open_store"]
