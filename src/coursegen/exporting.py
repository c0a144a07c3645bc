"""`coursegen export`: a course's export from a running server or from the local database."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from urllib.parse import quote

from coursegen.errors import AppError
from coursegen.export import Export, course_export
from coursegen.settings import Settings
from coursegen.store import open_store


class ExportFailed(Exception):
    """Why the export could not be made, in words for the terminal."""


async def local_export(settings: Settings, course_id: int, format_name: str) -> Export:
    store = await open_store(settings, lambda events: None, node="coursegen-export")
    try:
        return await course_export(store, course_id, format_name)
    except AppError as exc:
        raise ExportFailed(exc.message) from None
    finally:
        await store.close()


def fetch_export(server: str, token: str | None, course_id: int, format_name: str) -> Export:
    """GET the export from a server; its JSON error becomes the message."""
    url = f"{server.rstrip('/')}/api/courses/{course_id}/export/{quote(format_name)}"
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            body = response.read()
            disposition = response.headers.get("Content-Disposition", "")
            media_type = response.headers.get_content_type()
    except urllib.error.HTTPError as exc:
        raise ExportFailed(f"{server} answered {exc.code}: {_error_of(exc.read())}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ExportFailed(f"cannot reach {server}: {getattr(exc, 'reason', exc)}") from None
    match = re.search(r'filename="([^"/\\]+)"', disposition)
    return Export(match.group(1) if match else f"course-{course_id}", media_type, body)


def _error_of(body: bytes) -> str:
    try:
        return str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        return body[:200].decode(errors="replace")
