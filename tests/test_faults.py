"""Every failure of the model provider, through the whole app: right status, clear words,
nothing half-stored, no job left `running`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from asgi_lifespan import LifespanManager

from coursegen.app import create_app
from coursegen.domain import DEFAULT_OPTIONS
from coursegen.providers.anthropic_api import AnthropicProvider
from coursegen.settings import Settings
from coursegen_dev.fake_anthropic import FakeAnthropic
from tests.conftest import API_KEY, Running, counters_hold, db_rows, job_reaches
from tests.helpers import free_port

StartApp = Callable[..., Awaitable[Running]]
FAST_RETRY = {"retry-after-ms": "5"}


@pytest.mark.parametrize(
    ("fault", "calls", "words"),
    [
        ({"status": 401}, 1, "rejected the API key (401)"),
        ({"status": 500, "headers": FAST_RETRY}, 3, "the model provider failed (500, 3 attempts)"),
        ({"status": 529, "headers": FAST_RETRY}, 3, "overloaded (529, 3 attempts)"),
        ({"status": 529, "headers": {"x-should-retry": "false"}}, 1, "overloaded (529, 1 attempt)"),
        ({"delay": 3}, 1, "timed out after 0.5 s"),
    ],
)
async def test_a_failing_lesson_ends_in_error_with_words_while_the_others_finish(
    start_app: StartApp,
    fake: FakeAnthropic,
    fault: dict[str, Any],
    calls: int,
    words: str,
) -> None:
    # Only the stall needs a short timeout; it would cut the SDK's backoff short too.
    running = await start_app(max_retries=2, lesson_timeout=0.5 if "delay" in fault else 10)
    fake.add_fault(kind="lesson", match="Lesson 2", times=None, **fault)
    created = await running.generate(lessons=3)
    done = await running.settle(created["job_id"], seconds=20)
    assert (done["status"], done["completed_lessons"], done["failed_lessons"]) == ("error", 2, 1)
    course = (await running.http.get(f"/api/courses/{created['course_id']}")).json()
    failed = course["lessons"][1]
    assert failed["content_status"] == "error"
    assert words in failed["content_error"]
    assert API_KEY not in failed["content_error"]
    assert len(fake.lesson_calls("Lesson 2")) == calls
    assert await counters_hold(running.services.settings) == []
    # Healed, the lesson is retried to completion.
    fake.faults.clear()
    assert (await running.http.post(f"/api/lessons/{failed['id']}/retry")).status_code == 202
    assert (await running.settle(created["job_id"]))["status"] == "complete"


async def test_a_provider_that_refuses_connections_fails_each_lesson_clearly(
    fake: FakeAnthropic, settings: Settings
) -> None:
    working = AnthropicProvider(settings, api_key=API_KEY, base_url=fake.base_url)
    outline = (await working.generate_outline("Sourdough", 2, DEFAULT_OPTIONS)).outline
    await working.aclose()
    gone = AnthropicProvider(
        settings.replace(max_retries=1),
        api_key=API_KEY,
        base_url=f"http://127.0.0.1:{free_port()}",
    )
    app = create_app(settings, provider=gone)
    try:
        async with LifespanManager(app):
            services = app.state.services
            course, _ = await services.store.create_course("Sourdough", outline)
            services.runner.kick(course.job.job_id)
            done = await job_reaches(services, course.job.job_id, seconds=20)
            errors = [
                lesson.content_error
                for lesson in (await services.store.get_course(course.id)).lessons
            ]
    finally:
        await gone.aclose()
    assert (done["status"], done["failed_lessons"]) == ("error", 2)
    assert all("could not reach the model provider at 127.0.0.1 (2 attempts)" in e for e in errors)


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ({"status": 401}, "rejected the API key (401)"),
        ({"status": 429, "headers": FAST_RETRY}, "rate limiting this API key (429)"),
        ({"status": 529, "headers": FAST_RETRY}, "overloaded (529"),
        ({"status": 500, "headers": FAST_RETRY}, "failed (500"),
        ({"no_tool_call": True}, "without an outline"),
        ({"outline": {"title": "T", "description": "D", "lessons": []}}, "it has no lessons"),
        ({"outline": {"title": ["T"], "description": "D", "lessons": [{}]}}, "invalid outline"),
        ({"outline": {"title": "T", "description": "D", "lessons": [{"title": 1}]}}, "invalid"),
        ({"delay": 3}, "timed out after 0.5 s"),
    ],
)
async def test_a_failing_outline_is_502_and_stores_nothing(
    start_app: StartApp, fake: FakeAnthropic, fault: dict[str, Any], words: str
) -> None:
    running = await start_app(max_retries=2, lesson_timeout=0.5 if "delay" in fault else 10)
    fake.add_fault(kind="outline", times=None, **fault)
    response = await running.http.post("/api/courses/generate", json={"topic": "Sourdough"})
    assert response.status_code == 502
    assert words in response.json()["error"]
    for table in ("courses", "lessons", "content_generation_jobs", "events"):
        assert await db_rows(running.services.settings, f"SELECT count(*) FROM {table}") == [(0,)]
    assert (await running.http.get("/api/health")).json()["active_jobs"] == 0
