"""Batch mode (SPEC 11): a course's lessons sent as one Message Batch at batch prices,
polled to the end (after a kill -9 too), cancelled with the job, retried as a new batch.

The real SDK talks to the fake Messages API on loopback, whose batches end
`fake.batch_seconds` after creation at the first poll after that; the runner polls
every `batch_poll` seconds (0.1 here).
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from starlette.requests import Request
from starlette.responses import Response

from coursegen.app import create_app
from coursegen.services import Services
from coursegen.settings import Settings
from coursegen_dev.fake_anthropic import Batch, FakeAnthropic
from tests.conftest import API_KEY, Running, counters_hold, db_rows, job_reaches
from tests.helpers import generate, until
from tests.serverproc import (
    ServerProcess,
    counter_mismatches,
    fetch,
    integrity,
    server_env,
    stored_twice,
)

StartApp = Callable[..., Awaitable[Running]]

# A priced model, so that batch prices show (the conftest default has no price).
MODEL = "claude-sonnet-5-5"
# Its prices by hand, in USD per million tokens, from Anthropic's pricing page
# (input, output, 5-minute cache write, cache read); a batch call pays half of each.
PRICE = {"input": 2.0, "output": 10.0, "cache_write": 2.50, "cache_read": 0.10}
BATCH_FACTOR = 0.5
TOPIC = "Sourdough baking"
POLL = 0.1


class BatchFake(FakeAnthropic):
    """The fake Messages API with two more scripts for batch creation: answer the next
    `refuse_batches` with a 429 (the request bucket would hold up the outline call
    too), and hold each one, its request received whole, while `hold_batches` is set."""

    refuse_batches = 0
    hold_batches: asyncio.Event | None = None
    held = 0

    async def _create_batch(self, request: Request) -> Response:
        if self.refuse_batches:
            self.refuse_batches -= 1
            return self._error(429, {"retry-after": "1"})
        if self.hold_batches is not None:
            await request.body()  # it has all arrived: the batch is made even if the client goes
            self.held += 1
            await self.hold_batches.wait()
        return await super()._create_batch(request)


@pytest.fixture
async def fake() -> AsyncIterator[BatchFake]:
    async with BatchFake(api_key=API_KEY) as server:
        yield server


@pytest.fixture
async def batching(start_app: StartApp) -> Running:
    return await start_app(model=MODEL, batch_poll=POLL)


async def generate_batch(http: httpx.AsyncClient, lessons: int = 3) -> dict[str, Any]:
    return await generate(http, lessons, TOPIC, mode="batch", quizzes=False)


def stream_lesson_calls(fake: FakeAnthropic) -> list[str]:
    """Lesson calls made on /v1/messages itself (not inside a batch)."""
    return [c.title for c in fake.lesson_calls() if c.batch_id is None]


def only_batch(fake: FakeAnthropic) -> Batch:
    assert len(fake.batches) == 1, list(fake.batches)
    return next(iter(fake.batches.values()))


def custom_ids(lessons: list[dict[str, Any]], attempt: int) -> list[str]:
    return [f"l{lesson['id']}a{attempt}" for lesson in lessons]


async def batch_attached(settings: Settings, count: int = 1) -> bool:
    """Whether `count` batches are recorded with their lessons: from then on the server
    polls them (a cancel or a kill before that would race the submission)."""
    rows = await db_rows(
        settings,
        "SELECT count(*) FROM batches b WHERE EXISTS "
        "(SELECT 1 FROM lessons l WHERE l.batch_id = b.id)",
    )
    return bool(rows[0][0] >= count)


async def lesson_history(settings: Settings, lesson_id: int) -> list[str]:
    """The statuses the lesson's events announced, in order."""
    rows = await db_rows(settings, "SELECT data FROM events WHERE type = 'lesson' ORDER BY id")
    return [
        data["content_status"]
        for (raw,) in rows
        if (data := json.loads(raw))["lesson_id"] == lesson_id
    ]


def priced(usage: dict[str, Any], factor: float = 1.0) -> float:
    """What the usage costs on MODEL, computed here from the price table by hand."""
    return (
        factor
        * (
            usage["input_tokens"] * PRICE["input"]
            + usage["output_tokens"] * PRICE["output"]
            + usage["cache_creation_input_tokens"] * PRICE["cache_write"]
            + usage["cache_read_input_tokens"] * PRICE["cache_read"]
        )
        / 1_000_000
    )


async def lessons_of(http: httpx.AsyncClient, course: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        (await http.get(f"/api/lessons/{lesson['id']}")).json()
        for lesson in course["course"]["lessons"]
    ]


async def test_a_batch_course_is_one_batch_written_whole_at_half_price(
    batching: Running, fake: FakeAnthropic
) -> None:
    fake.batch_seconds = 60  # held until the test has looked at it in flight
    created = await generate_batch(batching.http)
    assert created["course"]["mode"] == "batch"
    course_id, job_id = created["course_id"], created["job_id"]
    await until(lambda: batch_attached(batching.services.settings))

    # Submitted: every lesson `generating`, with no text streamed while the batch runs.
    batch = only_batch(fake)
    lessons = created["course"]["lessons"]
    assert batch.custom_ids == custom_ids(lessons, 1)
    assert [c.title for c in batch.calls] == [lesson["title"] for lesson in lessons]
    assert [c.body["model"] for c in batch.calls] == [MODEL] * len(lessons)
    in_flight = await lessons_of(batching.http, created)
    assert [lesson["content_status"] for lesson in in_flight] == ["generating"] * 3
    assert all(not lesson["content"] for lesson in in_flight)
    course = (await batching.http.get(f"/api/courses/{course_id}")).json()
    assert course["mode"] == "batch" and course["job"]["status"] == "running"

    fake.batch_seconds = 0
    progress = await job_reaches(batching.services, job_id, seconds=15)
    assert progress["status"] == "complete" and progress["completed_lessons"] == 3
    assert only_batch(fake).cancel_requested is False
    assert stream_lesson_calls(fake) == []
    creations = [c for c in fake.calls if c.kind == "other" and c.path == "/v1/messages/batches"]
    assert len(creations) == 1
    assert await counters_hold(batching.services.settings) == []

    written = await lessons_of(batching.http, created)
    for lesson, call in zip(written, batch.calls, strict=True):
        assert lesson["content_status"] == "complete"
        assert lesson["content"] == call.sent_text.strip()
        assert (lesson["model"], lesson["stop_reason"], lesson["attempts"]) == (
            MODEL,
            "end_turn",
            1,
        )
        assert await lesson_history(batching.services.settings, lesson["id"]) == [
            "generating",
            "complete",
        ]
        # Half the price of the very tokens the lesson was billed for.
        usage = lesson["usage"]
        assert usage["output_tokens"] > 0 and usage["cost_usd"] > 0
        assert usage["cost_usd"] == pytest.approx(priced(usage, BATCH_FACTOR), abs=1e-6)
    rows = await db_rows(
        batching.services.settings,
        "SELECT batch FROM model_calls WHERE course_id = ? AND kind = 'lesson'",
        course_id,
    )
    assert sorted(rows) == [(1,)] * 3

    # The same course written by streaming, its cache as cold as the batch's was: the
    # same tokens, lesson by lesson, at twice the price.
    fake.clear_cache()
    response = await batching.http.post(
        "/api/courses/generate", json={"topic": TOPIC, "lessons": 3, "quizzes": False}
    )
    streamed = response.json()
    assert streamed["course"]["mode"] == "stream"
    progress = await job_reaches(batching.services, streamed["job_id"], seconds=15)
    assert progress["status"] == "complete"
    assert len(fake.batches) == 1
    for in_batch, by_stream in zip(written, await lessons_of(batching.http, streamed), strict=True):
        tokens = {k: v for k, v in in_batch["usage"].items() if k != "cost_usd"}
        assert tokens == {k: v for k, v in by_stream["usage"].items() if k != "cost_usd"}
        assert by_stream["usage"]["cost_usd"] == pytest.approx(priced(tokens), abs=1e-6)
        assert in_batch["usage"]["cost_usd"] == pytest.approx(
            BATCH_FACTOR * by_stream["usage"]["cost_usd"], abs=2e-6
        )


# -- kill -9 while a batch runs -------------------------------------------------------------


@pytest.fixture
async def server(
    fake: FakeAnthropic, settings: Settings, tmp_path: Path
) -> AsyncIterator[ServerProcess]:
    """`coursegen serve` as a child process on the test's database, polling every 0.1 s."""
    env = server_env(
        api_key=API_KEY,
        base_url=fake.base_url,
        model=MODEL,
        extra={"COURSEGEN_BATCH_POLL": str(POLL), "COURSEGEN_LEASE_SECONDS": "2"},
    )
    db_url = settings.db if settings.engine == "postgresql" else None
    process = ServerProcess(tmp_path / "coursegen.db", env, tmp_path / "server.log", db_url=db_url)
    try:
        yield process
    finally:
        await process.stop()


async def test_a_restart_after_kill_9_polls_the_same_batch_to_the_end(
    server: ServerProcess, fake: FakeAnthropic, settings: Settings
) -> None:
    fake.batch_seconds = 60  # it ends only once the restarted server is polling it
    await server.start()
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as http:
        created = await generate_batch(http)
    job_id, lessons = created["job_id"], created["course"]["lessons"]
    await until(lambda: batch_attached(settings))
    batch = only_batch(fake)

    server.send(signal.SIGKILL)
    await server.kill()
    assert server.exit_codes == [-signal.SIGKILL]
    rows = await fetch(
        server.db,
        "SELECT content_status, batch_id, attempt FROM lessons WHERE course_id = ? "
        "ORDER BY position",
        created["course_id"],
    )
    assert rows == [{"content_status": "generating", "batch_id": batch.id, "attempt": 1}] * len(
        lessons
    )

    restarted = time.monotonic()
    await server.start()

    def polled_again() -> bool:
        return any(
            c.path.startswith(f"/v1/messages/batches/{batch.id}") and c.started > restarted
            for c in fake.calls
        )

    await until(polled_again)
    fake.batch_seconds = 0
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as http:
        progress: dict[str, Any] = {}

        async def ended() -> bool:
            progress.update((await http.get(f"/api/jobs/{job_id}/progress")).json())
            return progress["status"] != "running"

        await until(ended, 20)
        assert progress["status"] == "complete", progress
        written = [(await http.get(f"/api/lessons/{les['id']}")).json() for les in lessons]

    # The same batch, polled on: no second one, and no lesson sent again.
    assert list(fake.batches) == [batch.id]
    assert stream_lesson_calls(fake) == []
    for lesson, call in zip(written, batch.calls, strict=True):
        assert lesson["content_status"] == "complete"
        assert lesson["content"] == call.sent_text.strip()
        assert lesson["attempts"] == 1
    # The restart did not put the lessons back to `pending` (requeue_in_flight left them).
    histories = await fetch(server.db, "SELECT data FROM events WHERE type = 'lesson' ORDER BY id")
    for lesson in lessons:
        announced = [
            data["content_status"]
            for row in histories
            if (data := json.loads(row["data"]))["lesson_id"] == lesson["id"]
        ]
        assert announced == ["generating", "complete"], (lesson["title"], announced)
    assert await counter_mismatches(server.db) == []
    assert await integrity(server.db) == "ok"
    assert await stored_twice(server.db) == []


# -- cancel, retry, a failed request ----------------------------------------------------------


async def test_cancel_cancels_the_batch_and_retry_sends_a_new_one(
    batching: Running, fake: FakeAnthropic
) -> None:
    fake.batch_seconds = 60
    created = await generate_batch(batching.http)
    job_id, lessons = created["job_id"], created["course"]["lessons"]
    await until(lambda: batch_attached(batching.services.settings))
    first = only_batch(fake)

    response = await batching.http.post(f"/api/jobs/{job_id}/cancel")
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "cancelled"
    assert first.cancel_requested
    course = (await batching.http.get(f"/api/courses/{created['course_id']}")).json()
    assert [lesson["content_status"] for lesson in course["lessons"]] == ["pending"] * 3
    assert course["job"]["status"] == "cancelled"

    # Retried at once, while the cancelled batch may still be polled to its end.
    fake.batch_seconds = 0.2
    response = await batching.http.post(f"/api/jobs/{job_id}/retry")
    assert response.status_code == 202, response.text
    assert response.json()["retried"] == 3
    progress = await job_reaches(batching.services, job_id, seconds=15)
    assert progress["status"] == "complete" and progress["completed_lessons"] == 3

    assert len(fake.batches) == 2
    second = fake.batches[next(b for b in fake.batches if b != first.id)]
    assert second.custom_ids == custom_ids(lessons, 2)
    assert not second.cancel_requested
    await until(lambda: first.status == "ended")
    assert set(first.result_types().values()) == {"canceled"}
    written = await lessons_of(batching.http, created)
    for lesson, call in zip(written, second.calls, strict=True):
        assert lesson["content_status"] == "complete"
        assert lesson["content"] == call.sent_text.strip()
    # Only the batch that wrote them was billed.
    rows = await db_rows(
        batching.services.settings,
        "SELECT count(*) FROM model_calls WHERE course_id = ? AND kind = 'lesson'",
        created["course_id"],
    )
    assert rows == [(3,)]
    assert stream_lesson_calls(fake) == []


async def test_a_cancel_while_the_batch_is_being_sent_cancels_that_batch_too(
    batching: Running, fake: BatchFake
) -> None:
    fake.batch_seconds = 60
    fake.hold_batches = release = asyncio.Event()
    created = await generate_batch(batching.http)
    job_id = created["job_id"]
    await until(lambda: fake.held == 1)

    cancel = asyncio.create_task(batching.http.post(f"/api/jobs/{job_id}/cancel"))
    await job_reaches(batching.services, job_id, lambda p: p["status"] == "cancelled")
    release.set()
    response = await cancel
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "cancelled"
    # The provider made the batch: it must not run on, unseen, at the user's expense.
    await until(lambda: len(fake.batches) == 1, 5)
    assert only_batch(fake).cancel_requested
    course = (await batching.http.get(f"/api/courses/{created['course_id']}")).json()
    assert [lesson["content_status"] for lesson in course["lessons"]] == ["pending"] * 3

    fake.hold_batches, fake.batch_seconds = None, 0.2
    response = await batching.http.post(f"/api/jobs/{job_id}/retry")
    assert response.status_code == 202, response.text
    progress = await job_reaches(batching.services, job_id, seconds=15)
    assert progress["status"] == "complete" and progress["completed_lessons"] == 3
    assert len(fake.batches) == 2


async def test_a_429_on_sending_the_batch_fails_no_lesson(
    batching: Running, fake: BatchFake
) -> None:
    fake.batch_seconds = 0.2
    fake.refuse_batches = 1
    created = await generate_batch(batching.http)
    progress = await job_reaches(batching.services, created["job_id"], seconds=15)
    assert progress["status"] == "complete", progress
    assert progress["failed_lessons"] == 0

    refused = [c for c in fake.calls if c.path == "/v1/messages/batches" and c.status == 429]
    assert len(refused) == 1
    # Sent again once the retry-after (1 s) had passed, as one batch of all the lessons.
    batch = only_batch(fake)
    assert batch.created - (refused[0].ended or 0) >= 0.9
    lessons = created["course"]["lessons"]
    assert batch.custom_ids == custom_ids(lessons, 2)
    for lesson in lessons:
        assert await lesson_history(batching.services.settings, lesson["id"]) == [
            "generating",
            "pending",
            "generating",
            "complete",
        ]
    assert stream_lesson_calls(fake) == []


@pytest.mark.parametrize("mode", ["fast", "BATCH", 1, ["batch"], None])
async def test_an_unknown_mode_is_a_400_naming_the_choices(
    batching: Running, fake: FakeAnthropic, mode: object
) -> None:
    response = await batching.http.post(
        "/api/courses/generate", json={"topic": TOPIC, "lessons": 3, "mode": mode, "quizzes": False}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert "mode" in error and "'stream'" in error and "'batch'" in error
    assert fake.calls == []
    settings = batching.services.settings
    for table in ("courses", "lessons", "content_generation_jobs", "events", "batches"):
        assert (await db_rows(settings, f"SELECT count(*) FROM {table}")) == [(0,)], table


async def test_a_failed_request_fails_its_lesson_only_and_retry_sends_it_alone(
    batching: Running, fake: FakeAnthropic
) -> None:
    fake.batch_seconds = 0.2
    fake.add_fault(kind="lesson", match="Core ideas", status=500)
    created = await generate_batch(batching.http)
    job_id = created["job_id"]
    progress = await job_reaches(batching.services, job_id, seconds=15)
    assert progress["status"] == "error"
    assert (progress["completed_lessons"], progress["failed_lessons"]) == (2, 1)

    batch = only_batch(fake)
    assert list(batch.result_types().values()) == ["succeeded", "errored", "succeeded"]
    written = await lessons_of(batching.http, created)
    assert [lesson["content_status"] for lesson in written] == ["complete", "error", "complete"]
    failed = written[1]
    assert "Core ideas" in failed["title"]
    assert failed["content_error"] == "the batch request failed: fake 500; retry it"
    assert failed["usage"]["cost_usd"] == 0  # an errored request is not billed

    response = await batching.http.post(f"/api/lessons/{failed['id']}/retry")
    assert response.status_code == 202, response.text
    progress = await job_reaches(batching.services, job_id, seconds=15)
    assert progress["status"] == "complete" and progress["completed_lessons"] == 3
    assert len(fake.batches) == 2
    retry = fake.batches[next(b for b in fake.batches if b != batch.id)]
    assert retry.custom_ids == custom_ids([failed], 2)
    assert retry.result_types() == {f"l{failed['id']}a2": "succeeded"}
    rewritten = (await batching.http.get(f"/api/lessons/{failed['id']}")).json()
    assert rewritten["content_status"] == "complete" and rewritten["content_error"] is None
    assert rewritten["content"] == retry.calls[0].sent_text.strip()
    # The two that were written are untouched: still their first (and only) attempt.
    assert [lesson["attempts"] for lesson in await lessons_of(batching.http, created)] == [
        1,
        2,
        1,
    ]
    assert stream_lesson_calls(fake) == []
    assert await counters_hold(batching.services.settings) == []


async def test_the_demo_provider_writes_a_batch_offline_at_no_cost(settings: Settings) -> None:
    chosen = settings.replace(provider="demo", demo_delay=0.3, batch_poll=POLL)
    app = create_app(chosen)
    async with LifespanManager(app, startup_timeout=10, shutdown_timeout=10) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            assert (await http.get("/api/health")).json()["provider"] == "demo"
            created = await generate_batch(http)
            services: Services = app.state.services
            progress = await job_reaches(services, created["job_id"], seconds=15)
            assert progress["status"] == "complete" and progress["completed_lessons"] == 3
            course = (await http.get(f"/api/courses/{created['course_id']}")).json()
            written = await lessons_of(http, created)
    assert course["mode"] == "batch"
    assert course["usage"]["cost_usd"] == 0 and course["usage"]["output_tokens"] > 0
    for lesson in written:
        assert lesson["content_status"] == "complete"
        assert "Demo content" in lesson["content"]
        assert lesson["usage"]["cost_usd"] == 0 and lesson["usage"]["output_tokens"] > 0
    rows = await db_rows(chosen, "SELECT batch FROM model_calls WHERE kind = 'lesson'")
    assert rows == [(1,)] * 3


async def test_quizzes_follow_their_lessons_in_a_second_batch_at_half_price(
    batching: Running, fake: FakeAnthropic
) -> None:
    """SPEC 11: the lessons as one batch, then their quizzes as a second one."""
    fake.batch_seconds = 0
    response = await batching.http.post(
        "/api/courses/generate", json={"topic": TOPIC, "lessons": 2, "mode": "batch"}
    )
    assert response.status_code == 201, response.text
    created = response.json()
    progress = await job_reaches(batching.services, created["job_id"], seconds=15)
    assert progress["status"] == "complete"
    lessons = created["course"]["lessons"]
    first, second = [fake.batches[b] for b in fake.batches]
    assert first.custom_ids == custom_ids(lessons, 1)
    assert second.custom_ids == [f"q{lesson['id']}a1" for lesson in lessons]
    assert stream_lesson_calls(fake) == [] and fake.quiz_calls() == [
        call for call in fake.quiz_calls() if call.batch_id == second.id
    ]
    for lesson in await lessons_of(batching.http, created):
        assert lesson["quiz_status"] == "complete" and 3 <= len(lesson["quiz"]) <= 5
    # The quiz calls were billed at batch prices too.
    rows = await db_rows(
        batching.services.settings,
        "SELECT kind, batch FROM model_calls WHERE kind <> 'outline' ORDER BY kind",
    )
    assert rows == [("lesson", 1), ("lesson", 1), ("quiz", 1), ("quiz", 1)]
    assert await counters_hold(batching.services.settings) == []
