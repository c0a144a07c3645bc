"""Property-based: generated requests against a live server on the demo provider.

Every answer must be a documented status with a body matching the OpenAPI
document, and no request may yield a 5xx. What the document states as a pattern
is checked against the server's own parsing too, value by value.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import httpx
import hypothesis
import jsonschema_rs
import pytest
import schemathesis
from schemathesis.config import ChecksConfig, SchemathesisConfig

from coursegen.app import create_app
from coursegen.errors import BadRequest
from coursegen.openapi import openapi_document
from coursegen.settings import Settings
from coursegen.validation import list_query, parse_lesson_edit
from tests.helpers import served_in_thread

MAX_EXAMPLES = 100

# A lesson's text may hold 50,000 characters, and the body must also fit in 64 KiB as sent:
# a byte limit JSON Schema cannot state. 50,000 emoji, sent escaped (`\ud83d\ude00`), are
# 600 KB, a valid request the body limit answers 413 (documented). Only this operation's
# valid bodies can outgrow the limit (the others' fields add up to under 30 KB even
# escaped), so only here is 413 an answer to valid data; anywhere else it stays a failure.
BODY_CAN_OUTGROW_THE_LIMIT = "PATCH /api/lessons/{id}"
# To invalid data (51,000 emoji where 50,000 may go), 413 is a refusal like 400.
DEFAULTS = ChecksConfig()
config = SchemathesisConfig.from_dict(
    {
        "checks": {
            "negative_data_rejection": {
                "expected-statuses": [*DEFAULTS.negative_data_rejection.expected_statuses, "413"]
            }
        },
        "operations": [
            {
                "include-name": BODY_CAN_OUTGROW_THE_LIMIT,
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": [
                            *DEFAULTS.positive_data_acceptance.expected_statuses,
                            "413",
                        ]
                    }
                },
            }
        ],
    }
)
# The all-jobs stream without a cursor never ends, so only its error answers are generated:
# a request that would open it is left to the stream tests.
schema = schemathesis.openapi.from_dict(openapi_document(), config=config)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app on the demo provider, served by uvicorn in a thread (these tests are sync)."""
    db = Path(tmp_path_factory.mktemp("schemathesis")) / "coursegen.db"
    settings = Settings(db=str(db), provider="demo", demo_delay=0.0, max_active_jobs=1000)
    with served_in_thread(create_app(settings)) as url:
        yield url


@schema.exclude(path="/api/events").parametrize()
@hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_every_answer_matches_the_document(case: schemathesis.Case, base_url: str) -> None:
    if case.path == "/api/jobs/{job_id}/events" and not case.headers and not case.query:
        case.headers = {"Last-Event-ID": "0"}
    case.call_and_validate(base_url=base_url, timeout=10)


# The fields whose rule the document states as a pattern, checked against the server's own
# parsing with the validator schemathesis judges by: a request one takes and the other
# refuses is a schemathesis failure that turns up only now and then.


def test_a_lesson_text_the_document_takes_is_one_the_server_takes() -> None:
    """Not empty once trimmed: `\\s` in the pattern once let U+0085 alone through, which
    Python trims to nothing, so the server said 400 to a valid edit."""
    content = openapi_document()["components"]["schemas"]["LessonEdit"]["properties"]["content"]
    takes = jsonschema_rs.validator_for({"type": "string", "pattern": content["pattern"]})
    # Every character up to the last white space (U+3000), and the byte order mark.
    for char in [*map(chr, range(0x3001)), "\ufeff"]:
        for text in (char, f"{char} {char}", f"{char}# Title"):
            try:
                parse_lesson_edit({"content": text})
                server = True
            except BadRequest:
                server = False
            assert takes.is_valid(text) == server, (hex(ord(char)), text)


def test_a_list_cursor_the_document_takes_is_one_the_server_takes() -> None:
    """`before` is a string of digits up to SQLite's largest integer, not just 19 digits."""
    (before,) = (
        parameter
        for parameter in openapi_document()["paths"]["/api/courses"]["get"]["parameters"]
        if parameter["name"] == "before"
    )
    takes = jsonschema_rs.validator_for(before["schema"])
    largest = 2**63 - 1
    rng = random.Random(0)
    cursors = [
        *("", "0", "00", "01", "1", "-1", "+1", " 1", "1 ", "1.0", "1e3", "9" * 18, "9" * 19),
        *(str(largest + step) for step in range(-3, 4)),
        *(str(rng.randrange(1, 10**19)) for _ in range(2000)),
        *(str(rng.randrange(1, 10**digits)) for digits in range(1, 19)),
    ]
    for cursor in cursors:
        try:
            list_query(None, cursor, None)
            server = True
        except BadRequest:
            server = False
        assert takes.is_valid(cursor) == server, cursor


def test_a_query_cursor_the_document_refuses_the_server_refuses(base_url: str) -> None:
    """Alone or beside a header that wins: both used to pass (an empty one, and any one
    under a header), a 200 to a request the document calls invalid."""
    url = f"{base_url}/api/lessons/999999/events"
    cases = (("", 400), ("x", 400), ("-1", 400), (str(2**63), 400), ("5", 404))
    for headers in ({}, {"Last-Event-ID": "0"}, {"Last-Event-ID": ""}):
        for query, status in cases:
            response = httpx.get(url, params={"last_event_id": query}, headers=headers, timeout=10)
            assert response.status_code == status, (headers, query, response.text)
