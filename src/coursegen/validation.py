"""Turning request input into values, or a 4xx that says what to send instead."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from coursegen.domain import CourseOptions, Level
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


LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX = 50, 200
SEARCH_MAX = 200  # characters: more than any title, topic and description need
_LIST_LIMIT = re.compile(r"[1-9][0-9]{0,2}")
# A page cursor: the id of the last course of the page before (no sign, no padding).
_PAGE_CURSOR = re.compile(r"[1-9][0-9]{0,18}")


@dataclass(frozen=True)
class ListQuery:
    limit: int
    before: int | None
    search: str | None


def _query_param(request: Request, name: str) -> str | None:
    """A query parameter given at most once, or None."""
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise BadRequest(f"{name} must be given at most once")
    return values[0] if values else None


def parse_list_query(request: Request) -> ListQuery:
    """`limit`, `before` and `q` of `GET /api/courses`."""
    return list_query(
        _query_param(request, "limit"), _query_param(request, "before"), _query_param(request, "q")
    )


def list_query(limit: str | None, before: str | None, search: str | None) -> ListQuery:
    """The list's paging and search as given (by a request, or by `coursegen list`)."""
    if limit is not None and not (_LIST_LIMIT.fullmatch(limit) and int(limit) <= LIST_LIMIT_MAX):
        raise BadRequest(f"limit must be a whole number from 1 to {LIST_LIMIT_MAX}")
    if before is not None and not (
        _PAGE_CURSOR.fullmatch(before) and int(before) <= _MAX_SQLITE_INT
    ):
        raise BadRequest(
            "before must be the `next` of an earlier answer, unchanged (leave it out for "
            "the first page)"
        )
    # Empty, or only white space: every course.
    if search is not None:
        if _FORBIDDEN.search(search):
            raise BadRequest("q must be one line of text without control characters")
        if len(search) > SEARCH_MAX:
            raise BadRequest(
                f"q must be at most {SEARCH_MAX} characters long (it has {len(search)})"
            )
    return ListQuery(
        int(limit) if limit is not None else LIST_LIMIT_DEFAULT,
        int(before) if before is not None else None,
        search,
    )


def parse_cursor(request: Request) -> int | None:
    """The stream resume cursor; the header wins, as EventSource updates it on reconnect.
    Each one sent is checked: a malformed one is a mistake even where the other wins.
    An empty header is none (the document says so); an empty query is no number."""
    header = request.headers.get("last-event-id")
    query = _cursor(request.query_params.get("last_event_id"))
    return _cursor(header) if header else query


def _cursor(raw: str | None) -> int | None:
    if raw is None:
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


INSTRUCTIONS_MAX = 2000
LANGUAGE_MIN, LANGUAGE_MAX = 2, 40
CONTENT_MAX = 50_000  # characters; the whole body must fit in 64 KiB
# Multi-line text: tabs and newlines allowed, other control characters not.
TEXT_FORBIDDEN = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
_FORBIDDEN_IN_TEXT = re.compile(f"[{TEXT_FORBIDDEN}]")
TEXT_PATTERN = f"^[^{TEXT_FORBIDDEN}]*$"


def line_pattern(low: int, high: int) -> str:
    """The rules of a one-line text field of `low`..`high` characters (trimmed), as one
    regular expression for the OpenAPI document."""
    middle = f"[^{FORBIDDEN}]{{{max(low - 2, 0)},{high - 2}}}[^{EDGE_SPACE}{FORBIDDEN}]"
    if low <= 1:
        middle = f"({middle})?"
    return f"^[{EDGE_SPACE}]*[^{EDGE_SPACE}{FORBIDDEN}]{middle}[{EDGE_SPACE}]*$"


async def read_optional_json_object(request: Request) -> dict[str, Any]:
    """A JSON object body, or {} for none (an action whose body is optional)."""
    if not (await request.body()).strip():
        return {}
    return await read_json_object(request)


def _line(data: dict[str, Any], field: str, low: int, high: int) -> str | None:
    """An optional one-line text field, trimmed; None when absent."""
    value = data.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{field} must be text")
    value = value.strip(EDGE_SPACE)
    if _FORBIDDEN.search(value):
        raise BadRequest(f"{field} must be one line of text without control characters")
    if not low <= len(value) <= high:
        raise BadRequest(f"{field} must be {low} to {high} characters long (it has {len(value)})")
    return value


def _text_field(data: dict[str, Any], field: str, high: int) -> str | None:
    """An optional multi-line text field, trimmed; None when absent."""
    value = data.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{field} must be text")
    if _FORBIDDEN_IN_TEXT.search(value):
        raise BadRequest(f"{field} must not contain control characters")
    value = value.strip()
    if len(value) > high:
        raise BadRequest(f"{field} must be at most {high} characters long (it has {len(value)})")
    return value


def parse_options(data: dict[str, Any]) -> CourseOptions:
    """The course options of a generate request (SPEC 9), each with its default."""
    level = data.get("level", "beginner")
    if level not in [member.value for member in Level]:
        raise BadRequest("level must be 'beginner', 'intermediate' or 'advanced'")
    quizzes = data.get("quizzes", True)
    if not isinstance(quizzes, bool):
        raise BadRequest("quizzes must be true or false")
    return CourseOptions(
        level=Level(level),
        language=_line(data, "language", LANGUAGE_MIN, LANGUAGE_MAX) or "English",
        instructions=_text_field(data, "instructions", INSTRUCTIONS_MAX) or "",
        quizzes=quizzes,
    )


def parse_instructions(data: dict[str, Any]) -> str:
    """The instructions of one regeneration ("" for none)."""
    return _text_field(data, "instructions", INSTRUCTIONS_MAX) or ""


@dataclass(frozen=True)
class LessonEdit:
    title: str | None
    description: str | None
    content: str | None
    position: int | None


def _position(data: dict[str, Any]) -> int | None:
    position = data.get("position")
    if position is None:
        return None
    if isinstance(position, float) and position.is_integer():
        position = int(position)
    if not isinstance(position, int) or isinstance(position, bool) or position < 1:
        raise BadRequest("position must be a whole number from 1")
    return position


def parse_lesson_edit(data: dict[str, Any]) -> LessonEdit:
    unknown = set(data) - {"title", "description", "content", "position"}
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(sorted(unknown))}")
    # The document has no null for them, and an edit may not half-happen by ignoring one.
    nulls = sorted(field for field, value in data.items() if value is None)
    if nulls:
        raise BadRequest(f"{', '.join(nulls)} must not be null: leave a field out to keep it")
    edit = LessonEdit(
        title=_line(data, "title", 1, 300),
        description=_text_field(data, "description", 2000),
        content=_text_field(data, "content", CONTENT_MAX),
        position=_position(data),
    )
    if edit == LessonEdit(None, None, None, None):
        raise BadRequest("send at least one of title, description, content and position")
    if edit.content == "":
        raise BadRequest("content must not be empty")
    return edit


def parse_new_lesson(data: dict[str, Any]) -> tuple[str, str, int | None]:
    title = _line(data, "title", 1, 300)
    if title is None:
        raise BadRequest("title is required")
    return title, _text_field(data, "description", 2000) or "", _position(data)
