"""Turning request input into values, or a 4xx that says what to send instead."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from starlette.requests import Request

from coursegen.errors import BadRequest, NotFound

TOPIC_MIN, TOPIC_MAX = 3, 200
LESSONS_MIN, LESSONS_MAX = 1, 20
_ID = re.compile(r"[0-9]{1,19}")
_MAX_SQLITE_INT = 2**63 - 1
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")

# What is trimmed from the ends of a topic: every white space, with the byte order mark.
EDGE_SPACE = (
    "\t\n\v\f\r \x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
# What a topic may not hold: control characters, line breaks, and bidirectional overrides
# that would make a title display as something other than what it is.
FORBIDDEN = "\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_FORBIDDEN = re.compile(f"[{FORBIDDEN}]")
# The same rules as one regular expression, for the OpenAPI document.
TOPIC_PATTERN = (
    f"^[{EDGE_SPACE}]*[^{EDGE_SPACE}{FORBIDDEN}][^{FORBIDDEN}]{{{TOPIC_MIN - 2},{TOPIC_MAX - 2}}}"
    f"[^{EDGE_SPACE}{FORBIDDEN}][{EDGE_SPACE}]*$"
)


def parse_id(value: int) -> int:
    """A row id from the path (routes match digits only); one SQLite cannot hold names nothing."""
    if value > _MAX_SQLITE_INT:
        raise NotFound("no such id")
    return value


def parse_job_id(raw: str) -> str:
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise NotFound("no such job") from None


def parse_cursor(request: Request) -> int | None:
    """The stream resume cursor; the header wins, as EventSource updates it on reconnect."""
    raw = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    if raw is None or raw == "":
        return None
    if not _ID.fullmatch(raw) or int(raw) > _MAX_SQLITE_INT:
        raise BadRequest("Last-Event-ID (or last_event_id) must be a non-negative whole number")
    return int(raw)


async def read_json_object(request: Request) -> dict[str, Any]:
    body = await request.body()
    if not body.strip():
        raise BadRequest('the body is empty; send JSON such as {"topic": "Sourdough baking"}')
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest('the body must be a JSON object such as {"topic": "Sourdough baking"}')
    return data


def parse_generate(data: dict[str, Any]) -> tuple[str, int | None]:
    """The topic and the optional lesson count of a generate request."""
    topic = data.get("topic")
    if not isinstance(topic, str):
        raise BadRequest("topic is required and must be text")
    topic = topic.strip(EDGE_SPACE)
    if _FORBIDDEN.search(topic):
        raise BadRequest("topic must be one line of text without control characters")
    if not TOPIC_MIN <= len(topic) <= TOPIC_MAX:
        raise BadRequest(
            f"topic must be {TOPIC_MIN} to {TOPIC_MAX} characters long (it has {len(topic)})"
        )
    lessons = data.get("lessons")
    if isinstance(lessons, float) and lessons.is_integer():
        lessons = int(lessons)  # JSON has one number type: 8.0 is the integer 8
    if lessons is not None and (
        not isinstance(lessons, int)
        or isinstance(lessons, bool)
        or not LESSONS_MIN <= lessons <= LESSONS_MAX
    ):
        raise BadRequest(f"lessons must be a whole number from {LESSONS_MIN} to {LESSONS_MAX}")
    return topic, lessons


def parse_mode(data: dict[str, Any]) -> str:
    """How a generate request wants its lessons written: `stream` (default) or `batch`."""
    mode = data.get("mode", "stream")
    if mode not in ("stream", "batch"):
        raise BadRequest(
            "mode must be 'stream' (lessons written now, streamed) or 'batch' (one Message "
            "Batch at half price, within 24 hours)"
        )
    return str(mode)


def parse_idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not _IDEMPOTENCY_KEY.fullmatch(key):
        raise BadRequest("Idempotency-Key must be 1 to 255 visible ASCII characters")
    return key
