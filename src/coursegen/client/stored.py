"""Reads of the local database for `list` and `export` without a server.

These open the store alone: a whole service would resume the database's unfinished
jobs, start paid model calls and cut them off again when the command ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from coursegen.client.remote import EXIT_FAILED, EXIT_USAGE, ClientError, Download
from coursegen.errors import AppError, BadRequest, NotFound
from coursegen.export import course_export
from coursegen.settings import Settings
from coursegen.store import Store, open_store
from coursegen.validation import list_query


@asynccontextmanager
async def opened(settings: Settings) -> AsyncIterator[Store]:
    try:
        store = await open_store(settings, lambda events: None, node="coursegen-client")
    except (OSError, ImportError) as exc:
        raise ClientError(f"cannot open the database {settings.db}: {exc}") from None
    try:
        yield store
    except AppError as exc:
        bad_input = isinstance(exc, BadRequest | NotFound)
        raise ClientError(exc.message, EXIT_USAGE if bad_input else EXIT_FAILED) from None
    finally:
        await store.close()


async def stored_courses(
    settings: Settings, *, limit: int, before: str | None, q: str | None
) -> dict[str, Any]:
    """A page of the list as `GET /api/courses` answers it, checked as the API checks it."""
    async with opened(settings) as store:
        query = list_query(str(limit), before, q)
        page = await store.list_courses(limit=query.limit, before=query.before, search=query.search)
    return {
        "courses": [course.to_json() for course in page.courses],
        "next": None if page.next is None else str(page.next),
        "last_event_id": page.last_event_id,
    }


async def stored_export(settings: Settings, course_id: int, format_name: str) -> Download:
    async with opened(settings) as store:
        made = await course_export(store, course_id, format_name)
    return Download(made.filename, made.body)
