"""Property-based: generated requests against a live server on the demo provider.

Every answer must be a documented status with a body matching the OpenAPI
document, and no request may yield a 5xx.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import hypothesis
import pytest
import schemathesis

from coursegen.app import create_app
from coursegen.openapi import openapi_document
from coursegen.settings import Settings
from tests.helpers import served_in_thread

MAX_EXAMPLES = 100

# The all-jobs stream without a cursor never ends, so only its error answers are generated:
# a request that would open it is left to the stream tests.
schema = schemathesis.openapi.from_dict(openapi_document())


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
