"""The OpenAPI 3.1 document of the HTTP API, served at /api/openapi.json.

Written out here rather than scraped from docstrings: the shapes are the
contract, the test suite checks every route is described, and a schemathesis
run checks every answer matches.
"""

from __future__ import annotations

from typing import Any

from coursegen import __version__
from coursegen.export import FORMATS
from coursegen.middleware import MAX_BODY
from coursegen.validation import (
    CONTENT_MAX,
    EDGE_SPACE,
    FORBIDDEN,
    INSTRUCTIONS_MAX,
    LANGUAGE_MAX,
    LANGUAGE_MIN,
    LESSONS_MAX,
    LESSONS_MIN,
    LIST_LIMIT_DEFAULT,
    LIST_LIMIT_MAX,
    SEARCH_MAX,
    TEXT_FORBIDDEN,
    TEXT_PATTERN,
    TOPIC_MAX,
    TOPIC_MIN,
    TOPIC_PATTERN,
    line_pattern,
)

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


_ERRORS = {
    400: "the body, a field or the cursor is invalid",
    401: "the API token is missing or wrong (only when COURSEGEN_API_TOKEN is set)",
    403: "a write from a web page of another origin (see COURSEGEN_ALLOWED_ORIGINS)",
    404: "no such id",
    409: "not allowed in the current state",
    413: "the body is over 64 KiB",
    415: "a body not sent as application/json",
    429: "too many courses are being written",
    502: "the model provider failed",
    503: "the server is shutting down",
}


def _responses(ok: dict[str, Any], *errors: int) -> dict[str, Any]:
    refs = {str(s): {"$ref": f"#/components/responses/E{s}"} for s in (*errors, 401)}
    return {**ok, **refs}


def _whole_number_pattern(high: int) -> str:
    """1..`high` written the usual way (no sign, no leading zero), as a regular expression:
    for a number sent as a string, which `maximum` cannot bound."""
    digits = str(high)
    shorter = [f"[1-9][0-9]{{0,{len(digits) - 2}}}"] if len(digits) > 1 else []
    # As long as `high`: its first i digits, then a smaller one, then any.
    same = [
        f"{digits[:i]}[{int(i == 0)}-{int(digit) - 1}][0-9]{{{len(digits) - i - 1}}}"
        for i, digit in enumerate(digits)
        if int(digit) > int(i == 0)
    ]
    return f"^({'|'.join([*shorter, *same, digits])})$"


_ROW_ID = {"type": "integer", "minimum": 0}
_UUID = {"type": "string", "format": "uuid"}
_TEXT = {"type": "string"}
_STAMP = {"type": "string", "description": "ISO 8601 time, UTC"}
_COUNT = {"type": "integer", "minimum": 0}


def _object(**properties: Any) -> dict[str, Any]:
    """An object whose every property is always present (null where the schema allows)."""
    return {"type": "object", "properties": properties, "required": list(properties)}


_COURSE = {
    "id": _ROW_ID,
    "topic": _TEXT,
    "title": _TEXT,
    "description": _TEXT,
    "created_at": _STAMP,
    "mode": {"enum": ["stream", "batch"]},
    "level": _ref("Level"),
    "language": _TEXT,
    "instructions": _TEXT,
    "quizzes": {"type": "boolean"},
    "job": _nullable(_ref("Progress")),
    "usage": _ref("Usage"),
}
_TITLE = {"type": "string", "pattern": line_pattern(1, 300), "description": "one line"}
_PROSE = {"type": "string", "maxLength": 2000, "pattern": TEXT_PATTERN}
# What str.strip() takes off a text's ends (EDGE_SPACE less the byte order mark), spelled
# out: `\s` means less in the ECMA dialect validators use (not U+0085, which Python strips).
_STRIPPED = EDGE_SPACE.replace("\ufeff", "")
_INSTRUCTIONS = _nullable(
    {"type": "string", "maxLength": INSTRUCTIONS_MAX, "pattern": TEXT_PATTERN}
)
_MODE = {
    "enum": ["stream", "batch"],
    "description": "stream (default): written now, streamed to readers; batch: one Message "
    "Batch at half price, within 24 h",
}

_SCHEMAS: dict[str, Any] = {
    "Error": _object(error={"type": "string", "description": "what to do about it"}),
    "Usage": _object(
        input_tokens=_COUNT,
        output_tokens=_COUNT,
        cache_creation_input_tokens=_COUNT,
        cache_read_input_tokens=_COUNT,
        cost_usd=_nullable(
            {"type": "number", "minimum": 0, "description": "US dollars; null: no known price"}
        ),
    ),
    "Progress": _object(
        job_id=_UUID,
        course_id=_ROW_ID,
        status={"enum": ["running", "complete", "error", "cancelled"]},
        progress={"type": "integer", "minimum": 0, "maximum": 100},
        total_lessons=_COUNT,
        completed_lessons=_COUNT,
        failed_lessons=_COUNT,
        error_message=_nullable(_TEXT),
        started_at=_STAMP,
        completed_at=_nullable(_STAMP),
        usage=_ref("Usage"),
    ),
    "LessonStatus": {"enum": ["pending", "generating", "complete", "error"]},
    "QuizStatus": {"enum": ["none", "pending", "generating", "complete", "error"]},
    "Level": {"enum": ["beginner", "intermediate", "advanced"]},
    "QuizQuestion": _object(
        question=_TEXT,
        choices={"type": "array", "minItems": 2, "maxItems": 6, "items": _TEXT},
        answer={"type": "integer", "minimum": 0, "description": "index of the right choice"},
        explanation=_TEXT,
    ),
    "Version": _object(
        version={"type": "integer", "minimum": 1},
        created_at=_STAMP,
        source={"enum": ["generated", "edited", "restored"]},
        instructions=_nullable(_TEXT),
        length=_COUNT,
    ),
    "VersionList": _object(versions={"type": "array", "items": _ref("Version")}),
    "VersionText": _object(
        version={"type": "integer", "minimum": 1},
        created_at=_STAMP,
        source={"enum": ["generated", "edited", "restored"]},
        instructions=_nullable(_TEXT),
        length=_COUNT,
        content=_TEXT,
        content_html=_TEXT,
    ),
    "LessonEdit": {
        "type": "object",
        "properties": {
            "title": _TITLE,
            "description": _PROSE,
            "content": (
                {
                    "type": "string",
                    "maxLength": CONTENT_MAX,
                    "pattern": f"^[^{TEXT_FORBIDDEN}]*[^{_STRIPPED}\x00-\x1f\x7f]"
                    f"[^{TEXT_FORBIDDEN}]*$",
                    "description": "Markdown, not empty; the whole body must also fit in "
                    f"{MAX_BODY // 1024} KiB as sent (413)",
                }
            ),
            "position": {
                "type": "integer",
                "minimum": 1,
                "description": "move it here (1..n), the others shift; past the end: last",
            },
        },
        "additionalProperties": False,
        "minProperties": 1,
    },
    "NewLesson": {
        "type": "object",
        "properties": {
            "title": _TITLE,
            "description": _nullable(_PROSE),
            "position": {
                **_nullable({"type": "integer", "minimum": 1}),
                "description": "where it goes (1..n+1), the others shift; left out, null or "
                "past the end: last",
            },
        },
        "required": ["title"],
    },
    "Regeneration": {"type": "object", "properties": {"instructions": _INSTRUCTIONS}},
    "QuizRetry": _object(lesson_id=_ROW_ID, job_id=_UUID, quiz_status={"const": "pending"}),
    "LessonSummary": _object(
        id=_ROW_ID,
        position={"type": "integer"},
        title=_TEXT,
        description=_TEXT,
        content_status=_ref("LessonStatus"),
        content_error=_nullable(_TEXT),
        quiz_status=_ref("QuizStatus"),
        usage=_ref("Usage"),
    ),
    "Course": _object(**_COURSE, lessons={"type": "array", "items": _ref("LessonSummary")}),
    "CourseListItem": _object(
        **_COURSE,
        lesson_count=_COUNT,
        lesson_statuses=_object(pending=_COUNT, generating=_COUNT, complete=_COUNT, error=_COUNT),
    ),
    "CourseList": _object(
        courses={"type": "array", "items": _ref("CourseListItem")},
        next=_nullable(
            {
                "type": "string",
                "description": "send as `before` for the next page; null: this is the last",
            }
        ),
        last_event_id=_COUNT,
    ),
    "Lesson": _object(
        id=_ROW_ID,
        course_id=_ROW_ID,
        job_id=_nullable(_UUID),
        position={"type": "integer"},
        title=_TEXT,
        description=_TEXT,
        content=_nullable(
            {"type": "string", "description": "Markdown: written so far, or whole when complete"}
        ),
        content_html=_nullable({"type": "string", "description": "sanitised HTML"}),
        content_status=_ref("LessonStatus"),
        content_error=_nullable(_TEXT),
        updated_at=_STAMP,
        usage=_ref("Usage"),
        model=_nullable(_TEXT),
        attempts={"type": "integer", "minimum": 0, "description": "calls started to write it"},
        duration_ms=_nullable(_COUNT),
        stop_reason=_nullable(_TEXT),
        quiz_status=_ref("QuizStatus"),
        quiz=_nullable({"type": "array", "items": _ref("QuizQuestion")}),
        quiz_error=_nullable(_TEXT),
    ),
    "GenerateRequest": {
        "type": "object",
        "properties": {
            "topic": {
                "type": "string",
                "description": f"one line of {TOPIC_MIN} to {TOPIC_MAX} characters, "
                "counted after trimming white space",
                "pattern": TOPIC_PATTERN,
            },
            # null, like leaving it out, lets the model choose.
            "lessons": _nullable(
                {"type": "integer", "minimum": LESSONS_MIN, "maximum": LESSONS_MAX}
            ),
            "mode": _MODE,
            "level": _ref("Level"),
            "language": _nullable(
                {"type": "string", "pattern": line_pattern(LANGUAGE_MIN, LANGUAGE_MAX)}
            ),
            "instructions": _INSTRUCTIONS,
            "quizzes": {"type": "boolean"},
        },
        "required": ["topic"],
    },
    "GenerateAnswer": _object(
        success={"const": True},
        course_id=_ROW_ID,
        job_id=_UUID,
        message=_TEXT,
        course=_ref("Course"),
        estimate=_object(
            max_cost_usd=_nullable(
                {
                    "type": "number",
                    "minimum": 0,
                    "description": "the most the lessons can cost at their token limits",
                }
            )
        ),
    ),
    "LessonPriority": _object(lesson_id=_ROW_ID, content_status=_ref("LessonStatus")),
    "LessonRetry": _object(lesson_id=_ROW_ID, job_id=_UUID, content_status={"const": "pending"}),
    "JobRetry": _object(job_id=_UUID, retried={"type": "integer", "minimum": 1}),
    "Health": _object(
        status={"const": "ok"},
        provider={"enum": ["anthropic", "demo"]},
        model=_TEXT,
        concurrency={"type": "integer", "minimum": 1},
        effective_concurrency={
            "type": "integer",
            "minimum": 1,
            "description": "lower than concurrency while the provider rate-limits",
        },
        rate_limit=_object(
            paused_for_seconds={"type": "number", "minimum": 0},
            remaining={"type": "object", "additionalProperties": _COUNT},
        ),
        active_jobs=_COUNT,
        engine={"enum": ["sqlite", "postgresql"]},
        node={"type": "string", "description": "this process's name among the nodes"},
    ),
}

_ID_PARAMETER = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
}
_JOB_PARAMETER = {"name": "job_id", "in": "path", "required": True, "schema": _UUID}
_CURSOR_PARAMETERS = [
    {
        "name": "Last-Event-ID",
        "in": "header",
        "schema": {"type": "string", "pattern": "^[0-9]{0,18}$"},
        "description": "resume after this event id (sent by EventSource on reconnect; wins; "
        "empty: none)",
    },
    {
        "name": "last_event_id",
        "in": "query",
        "schema": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
        "description": "resume after this event id",
    },
]
_LIST_PARAMETERS = [
    {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": LIST_LIMIT_MAX},
        "description": f"courses a page, at most (default {LIST_LIMIT_DEFAULT})",
    },
    {
        "name": "before",
        "in": "query",
        "schema": {"type": "string", "pattern": _whole_number_pattern(2**63 - 1)},
        "description": "the `next` of the page before, unchanged (none: the first page)",
    },
    {
        "name": "q",
        "in": "query",
        "schema": {"type": "string", "maxLength": SEARCH_MAX, "pattern": f"^[^{FORBIDDEN}]*$"},
        "description": "words the title, topic or description must all hold, the last as a "
        "prefix (search as you type); empty: every course",
    },
]
# One event as a client's parser gives it: its fields, each a string.
_SSE_EVENT = {
    "type": "object",
    "properties": {"id": _TEXT, "event": _TEXT, "data": _TEXT, "retry": _TEXT},
    "required": ["data"],
}
_EVENT_STREAM = {
    "description": "Server-Sent Events: `id:` (event log id), `event:` (snapshot, lesson, "
    "progress, job, course) and one line of JSON `data:`",
    "content": {"text/event-stream": {"schema": _SSE_EVENT}},
}


def _operation(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "responses": responses, **extra}


_LESSON_STREAM = {
    "description": "Server-Sent Events: `snapshot` {lesson, attempt}, then `text` {lesson_id, "
    "attempt, offset, end, text} (offsets in code points) and `lesson` events",
    "content": {"text/event-stream": {"schema": _SSE_EVENT}},
}

_PATHS: dict[str, Any] = {
    "/api/courses/generate": {
        "post": _operation(
            "Ask for an outline, store the course and start writing its lessons",
            _responses(
                {"201": _json(_ref("GenerateAnswer"), "the course, written in the background")},
                *(400, 409, 429, 502, 503),
            ),
            parameters=[
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "schema": {"type": "string", "pattern": "^[!-~]{1,255}$"},
                    "description": "the same key within 24 h returns the first answer",
                }
            ],
            requestBody={"required": True, "content": {JSON: {"schema": _ref("GenerateRequest")}}},
        )
    },
    "/api/courses": {
        "get": _operation(
            "A page of courses, newest first (those matching `q`), and the newest event id",
            _responses({"200": _json(_ref("CourseList"), "the courses")}, 400),
            parameters=_LIST_PARAMETERS,
        )
    },
    "/api/courses/{id}": {
        "parameters": [_ID_PARAMETER],
        "get": _operation(
            "A course with its job and lessons",
            _responses({"200": _json(_ref("Course"), "the course")}, 404),
        ),
        "delete": _operation(
            "Cancel the course's job, then delete it with its lessons, jobs and events",
            _responses({"204": {"description": "deleted"}}, 404),
        ),
    },
    "/api/courses/{id}/export/{format}": {
        "parameters": [
            _ID_PARAMETER,
            {
                "name": "format",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "enum": list(FORMATS)},
                "description": "markdown (zip), html, scorm12 (SCORM 1.2 zip), cc (Common "
                "Cartridge 1.1)",
            },
        ],
        "get": _operation(
            "The course as a download; lessons not written yet are listed as such",
            _responses(
                {
                    "200": {
                        "description": "the file, with Content-Disposition: attachment",
                        "content": {
                            media: {"schema": {"type": "string", "format": "binary"}}
                            for media in ("application/zip", "text/html")
                        },
                    }
                },
                404,
                409,
            ),
        ),
    },
    "/api/lessons/{id}": {
        "parameters": [_ID_PARAMETER],
        "get": _operation(
            "A lesson, with its Markdown and sanitised HTML once complete",
            _responses({"200": _json(_ref("Lesson"), "the lesson")}, 404),
        ),
        "patch": _operation(
            "Edit a lesson by hand: a new text becomes a version; a position moves it",
            _responses({"200": _json(_ref("Lesson"), "the lesson")}, 400, 404, 409),
            requestBody={"required": True, "content": {JSON: {"schema": _ref("LessonEdit")}}},
        ),
        "delete": _operation(
            "Remove a lesson (a call in flight for it is cancelled); the others move up",
            _responses({"204": {"description": "removed"}}, 404),
        ),
    },
    "/api/courses/{id}/lessons": {
        "parameters": [_ID_PARAMETER],
        "post": _operation(
            "Add a pending lesson at a position; the course's job writes it",
            _responses({"201": _json(_ref("Lesson"), "the new lesson")}, 400, 404),
            requestBody={"required": True, "content": {JSON: {"schema": _ref("NewLesson")}}},
        ),
    },
    "/api/lessons/{id}/versions": {
        "parameters": [_ID_PARAMETER],
        "get": _operation(
            "Every text the lesson has had, newest first",
            _responses({"200": _json(_ref("VersionList"), "the versions")}, 404),
        ),
    },
    "/api/lessons/{id}/versions/{n}": {
        "parameters": [_ID_PARAMETER, {**_ID_PARAMETER, "name": "n"}],
        "get": _operation(
            "One version's text",
            _responses({"200": _json(_ref("VersionText"), "the version")}, 404),
        ),
    },
    "/api/lessons/{id}/versions/{n}/restore": {
        "parameters": [_ID_PARAMETER, {**_ID_PARAMETER, "name": "n"}],
        "post": _operation(
            "Make a version the lesson's text again (as a new version)",
            _responses({"200": _json(_ref("Lesson"), "the lesson")}, 404, 409),
        ),
    },
    "/api/lessons/{id}/quiz/retry": {
        "parameters": [_ID_PARAMETER],
        "post": _operation(
            "Write the lesson's quiz again",
            _responses({"202": _json(_ref("QuizRetry"), "queued")}, 404, 409),
        ),
    },
    "/api/lessons/{id}/retry": {
        "parameters": [_ID_PARAMETER],
        "post": _operation(
            "Write a failed lesson again, or regenerate a complete one (with instructions "
            "for this version only)",
            _responses({"202": _json(_ref("LessonRetry"), "queued")}, 400, 404, 409),
            requestBody={
                "required": False,
                "content": {JSON: {"schema": _ref("Regeneration")}},
            },
        ),
    },
    "/api/lessons/{id}/prioritize": {
        "parameters": [_ID_PARAMETER],
        "post": _operation(
            "Write this pending lesson next, ahead of every other (a reader is waiting)",
            _responses(
                {
                    "202": _json(_ref("LessonPriority"), "it is next"),
                    "200": _json(_ref("LessonPriority"), "not pending: nothing changed"),
                },
                404,
            ),
        ),
    },
    "/api/lessons/{id}/events": {
        "parameters": [_ID_PARAMETER, *_CURSOR_PARAMETERS],
        "get": _operation(
            "One lesson as it is written: a snapshot, then `text` chunks and `lesson` "
            "status events, until it is complete or failed",
            _responses({"200": _LESSON_STREAM}, 400, 404),
        ),
    },
    "/api/jobs/{job_id}/progress": {
        "parameters": [_JOB_PARAMETER],
        "get": _operation(
            "A job's progress", _responses({"200": _json(_ref("Progress"), "the progress")}, 404)
        ),
    },
    "/api/jobs/{job_id}/retry": {
        "parameters": [_JOB_PARAMETER],
        "post": _operation(
            "Queue every failed lesson again (and a cancelled job's unfinished ones)",
            _responses({"202": _json(_ref("JobRetry"), "queued")}, 404, 409),
        ),
    },
    "/api/jobs/{job_id}/cancel": {
        "parameters": [_JOB_PARAMETER],
        "post": _operation(
            "Cancel a running job; lessons being written go back to pending",
            _responses({"202": _json(_ref("Progress"), "cancelled")}, 404, 409),
        ),
    },
    "/api/jobs/{job_id}/events": {
        "parameters": [_JOB_PARAMETER, *_CURSOR_PARAMETERS],
        "get": _operation(
            "A job's events: a snapshot (or what was missed), then live, until it ends",
            _responses({"200": _EVENT_STREAM}, 400, 404),
        ),
    },
    "/api/events": {
        "parameters": _CURSOR_PARAMETERS,
        "get": _operation(
            "Every job's events, live; endless",
            _responses({"200": _EVENT_STREAM}, 400),
        ),
    },
    "/api/health": {
        "get": _operation(
            "Provider, model, concurrency and running jobs",
            _responses({"200": _json(_ref("Health"), "the service is up")}),
        )
    },
    "/api/openapi.json": {
        "get": _operation(
            "This document", _responses({"200": _json({"type": "object"}, "OpenAPI 3.1")})
        )
    },
}


def _guarded(paths: dict[str, Any]) -> dict[str, Any]:
    """The paths with the answers of the layers in front of the routes: the cross-site
    guards' (guards.py) on every write, the body limit's (middleware.py) wherever a body
    is taken, whatever its schema allows."""

    def responses(method: str, op: dict[str, Any]) -> dict[str, Any]:
        statuses = [403, 415] if method in ("post", "patch", "put", "delete") else []
        statuses += [413] if "requestBody" in op else []
        refs = {str(s): {"$ref": f"#/components/responses/E{s}"} for s in statuses}
        return {**op["responses"], **refs}

    return {
        path: {
            method: {**op, "responses": responses(method, op)} if method != "parameters" else op
            for method, op in operations.items()
        }
        for path, operations in paths.items()
    }


def openapi_document() -> dict[str, Any]:
    """The whole OpenAPI document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "coursegen",
            "version": __version__,
            "description": "A topic in, a whole course written by Claude out, live.",
        },
        "paths": _guarded(_PATHS),
        "components": {
            "schemas": _SCHEMAS,
            "responses": {
                f"E{status}": _json(_ref("Error"), meaning) for status, meaning in _ERRORS.items()
            },
            "securitySchemes": {
                "token": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "coursegen_session"},
            },
        },
    }
