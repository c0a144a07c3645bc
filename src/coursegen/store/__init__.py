"""The database: the one owner of every SQL statement, behind one interface."""

from coursegen.settings import Settings
from coursegen.store.base import EVENT_PAGE, OnCommit, Store
from coursegen.store.sqlite import SqliteStore


async def open_store(settings: Settings, on_commit: OnCommit, *, node: str) -> Store:
    """The store the settings name: a SQLite file (created if needed) or PostgreSQL."""
    if settings.engine == "postgresql":
        # asyncpg is an optional extra: imported only by those who use it.
        from coursegen.store.postgres import PostgresStore

        return await PostgresStore.open(
            settings.db,
            on_commit,
            node=node,
            lease=settings.lease_seconds,
            cluster_limit=settings.cluster_concurrency,
        )
    return await SqliteStore.open(settings.db_path, on_commit)


__all__ = ["EVENT_PAGE", "OnCommit", "SqliteStore", "Store", "open_store"]
